package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg/svgtest"
	"pipeguard/stages"
)

// TestSmokeMem runs the in-memory mode on a tiny sweep, a few thousand
// packets a measurement, and checks that the table on stdout and the JSON
// file agree figure for figure, that the chart is written, and that
// progress came one line per measurement.
func TestSmokeMem(t *testing.T) {
	if testing.Short() {
		t.Skip("runs tunnels")
	}
	dir := t.TempDir()
	const packets = 3000
	var stdout, prog bytes.Buffer
	cfg := Config{
		Packets:     packets,
		Sizes:       []int{256},
		Peers:       []int{2},
		Procs:       []int{runtime.NumCPU()},
		Workers:     []int{0},
		JSONPath:    filepath.Join(dir, "r.json"),
		SVGPath:     filepath.Join(dir, "r.svg"),
		CPUProfile:  filepath.Join(dir, "cpu.pprof"),
		CommandLine: []string{"bench", "--smoke"},
		Progress:    &prog,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON := readReportFile(t, cfg.JSONPath)
	// 3 directions × 2 engines, one AEAD limit, and the stage profile.
	if n := len(fromJSON.Mem.Results); n != 6 {
		t.Fatalf("%d results, want 6", n)
	}
	checkTable(t, stdout.String(), fromJSON)
	if fromJSON.Mem.StageCPU == nil || len(fromJSON.Mem.StageCPU.Stages) == 0 {
		t.Error("no CPU-per-stage figures")
	}
	for _, r := range fromJSON.Mem.Results {
		want := uint64(packets)
		if r.Direction == core.Both {
			want *= 2
		}
		if len(r.Samples) != 1 || r.Samples[0].Packets != want || !(r.Gbps > 0) {
			t.Errorf("%v: samples %+v", r.Case, r.Samples)
		}
		if r.Engine == "pipeline" && !(r.VsSequential > 0) || !(r.AEADGbps > 0) {
			t.Errorf("%v: ratios missing: %+v", r.Case, r)
		}
	}
	m := fromJSON.Machine
	if m.Cores != runtime.NumCPU() || m.GoVersion != runtime.Version() || m.CPUModel == "" || m.Kernel == "" ||
		m.Date == "" || strings.Join(m.CommandLine, " ") != "bench --smoke" {
		t.Errorf("machine %+v", m)
	}
	if rep.Mem.Results[0].Gbps != fromJSON.Mem.Results[0].Gbps {
		t.Error("returned report differs from the JSON")
	}
	svg, err := os.ReadFile(cfg.SVGPath)
	if err != nil {
		t.Fatal(err)
	}
	svgtest.Parse(t, svg)
	if fi, err := os.Stat(cfg.CPUProfile); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile: %v", err)
	}
	if n := strings.Count(prog.String(), "\n"); n != 6+1+1 {
		t.Errorf("%d progress lines, want 8:\n%s", n, prog.String())
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []Config{
		{Mode: "disk"},
		{Sizes: []int{16}},
		{Sizes: []int{1281}},
		{Peers: []int{0}},
		{Procs: []int{0}},
		{Workers: []int{-1}},
		{Directions: []core.Direction{"sideways"}},
		{Engines: []stages.Engine{"turbo"}},
		{Repeat: -1},
	} {
		if _, err := Run(context.Background(), c, &bytes.Buffer{}); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", c, err)
		}
	}
}

func TestSweep(t *testing.T) {
	c, err := Config{Quick: true, Procs: []int{1, 2}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cases := c.memCases()
	// 3 directions × 2 sizes × 1 peer × 2 GOMAXPROCS × (sequential + pipeline at workers = GOMAXPROCS).
	if len(cases) != 24 {
		t.Fatalf("%d quick cases", len(cases))
	}
	for _, mc := range cases {
		if mc.Engine == "pipeline" && mc.Workers != mc.Procs || mc.Engine == "sequential" && mc.Workers != 0 {
			t.Errorf("case %v", mc)
		}
	}
	full, _ := Config{Procs: []int{1, 2}}.withDefaults()
	if got := full.workersFor(2); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 4 {
		t.Errorf("workers at 2: %v", got)
	}
	if got := full.workersFor(1); len(got) != 2 {
		t.Errorf("workers at 1: %v (1 and 2, without repeats)", got)
	}
	if sc := full.stageCase(); sc.Engine != "pipeline" || sc.Direction != core.Both || sc.PacketSize != 1280 || sc.Procs != 2 {
		t.Errorf("stage case %v", sc)
	}
}
