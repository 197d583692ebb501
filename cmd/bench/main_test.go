package main

import (
	"slices"
	"testing"
	"time"

	"pipeguard/bench"
	"pipeguard/stages"
)

func TestParse(t *testing.T) {
	cfg, err := parse([]string{"--quick", "--duration", "250ms", "--repeat", "3", "--json", "out.json", "--svg", "c.svg",
		"--cpuprofile", "cpu.pprof", "--memprofile", "mem.pprof", "--no-stage-cpu",
		"--directions", "inbound,both", "--engines", "pipeline", "--sizes", "64,1280", "--peers", "1,4",
		"--procs", "1,2", "--workers", "0,3"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != bench.ModeMem || !cfg.Quick || cfg.Duration != 250*time.Millisecond || cfg.Repeat != 3 || !cfg.NoStageCPU {
		t.Errorf("config %+v", cfg)
	}
	// Paths are made absolute by kong; only their ends matter here.
	for _, p := range []string{cfg.JSONPath, cfg.SVGPath, cfg.CPUProfile, cfg.MemProfile} {
		if p == "" || p[0] != '/' {
			t.Errorf("path %q", p)
		}
	}
	if !slices.Equal(cfg.Directions, []bench.Direction{bench.Inbound, bench.Both}) ||
		!slices.Equal(cfg.Engines, []stages.Engine{stages.EnginePipeline}) ||
		!slices.Equal(cfg.Sizes, []int{64, 1280}) || !slices.Equal(cfg.Peers, []int{1, 4}) ||
		!slices.Equal(cfg.Procs, []int{1, 2}) || !slices.Equal(cfg.Workers, []int{0, 3}) {
		t.Errorf("sweep %+v", cfg)
	}

	def, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Mode != bench.ModeMem || def.Quick || def.Duration != 0 || def.Repeat != 1 || def.Sizes != nil {
		t.Errorf("defaults %+v", def)
	}
	for _, bad := range [][]string{{"--mode", "disk"}, {"--sizes", "x"}, {"--duration", "soon"}, {"extra"}} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestParseNetns(t *testing.T) {
	cfg, err := parse([]string{"--mode", "all", "--quick", "--streams", "1,8", "--duration", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != bench.ModeAll || !cfg.Quick || !slices.Equal(cfg.Streams, []int{1, 8}) || cfg.Duration != 3*time.Second {
		t.Errorf("config %+v", cfg)
	}
	if _, err := parse([]string{"--mode", "netns", "--streams", "many"}); err == nil {
		t.Error("--streams many accepted")
	}
}

func TestParseLoadgen(t *testing.T) {
	cfg, err := parse([]string{"--mode", "loadgen", "--quick", "--repeat", "3", "--engines", "pipeline", "--json", "l.json", "--svg", "l.svg"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != bench.ModeLoadgen || !cfg.Quick || cfg.Repeat != 3 || !slices.Equal(cfg.Engines, []stages.Engine{stages.EnginePipeline}) ||
		cfg.JSONPath == "" || cfg.SVGPath == "" {
		t.Errorf("config %+v", cfg)
	}
}

func TestParseSoak(t *testing.T) {
	cfg, err := parse([]string{"--mode", "soak", "--duration", "60s", "--change-every", "20s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != bench.ModeSoak || cfg.Duration != time.Minute || cfg.SoakEvery != 20*time.Second {
		t.Errorf("config %+v", cfg)
	}
	if _, err := parse([]string{"--mode", "soak", "--change-every", "often"}); err == nil {
		t.Error("--change-every often accepted")
	}
}

func TestParseFlood(t *testing.T) {
	cfg, err := parse([]string{"--mode", "flood", "--quick"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != bench.ModeFlood || !cfg.Quick {
		t.Errorf("config %+v", cfg)
	}
}
