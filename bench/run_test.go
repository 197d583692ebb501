package bench

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestRunMem runs the harness as cmd/bench does, on a tiny in-memory
// sweep, and checks what Run puts together: stdout is the header and the
// mode's own table; the JSON file holds the report Run returned; the
// chart, the CPU profile and the allocation profile are written; the
// machine is described; progress came one line per measurement.
func TestRunMem(t *testing.T) {
	if testing.Short() {
		t.Skip("runs tunnels")
	}
	dir := t.TempDir()
	var stdout, prog bytes.Buffer
	cfg := Config{
		Packets:     2000,
		Directions:  []Direction{Inbound},
		Sizes:       []int{256},
		Peers:       []int{1},
		Procs:       []int{1},
		Workers:     []int{0},
		JSONPath:    filepath.Join(dir, "r.json"),
		SVGPath:     filepath.Join(dir, "r.svg"),
		CPUProfile:  filepath.Join(dir, "cpu.pprof"),
		MemProfile:  filepath.Join(dir, "mem.pprof"),
		CommandLine: []string{"bench", "--smoke"},
		Progress:    &prog,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.Mem.WriteTable(&table, rep.Settings)
	if out := stdout.String(); !strings.HasPrefix(out, "PipeGuard bench: ") || !strings.HasSuffix(out, table.String()) ||
		strings.Count(out, "\n") != strings.Count(table.String(), "\n")+1 {
		t.Errorf("stdout is not the header and the in-memory table:\n%s", out)
	}
	j1, _ := json.Marshal(rep)
	j2, _ := json.Marshal(readReportFile(t, cfg.JSONPath))
	if !bytes.Equal(j1, j2) {
		t.Errorf("the JSON file differs from the report returned:\n%s\n%s", j2, j1)
	}
	if n := len(rep.Mem.Results); n != 2 { // the two engines
		t.Errorf("%d results, want 2", n)
	}
	m := rep.Machine
	if m.Cores != runtime.NumCPU() || m.GoVersion != runtime.Version() || m.CPUModel == "" || m.Kernel == "" ||
		m.Date == "" || strings.Join(m.CommandLine, " ") != "bench --smoke" {
		t.Errorf("machine %+v", m)
	}
	if s := rep.Settings; s.Mode != "mem" || s.Repeat != 1 || s.Packets != 2000 || s.DurationSeconds != 1 {
		t.Errorf("settings %+v", s)
	}
	chart, err := os.ReadFile(cfg.SVGPath)
	if err != nil {
		t.Fatal(err)
	}
	svgtest.Parse(t, chart)
	for _, p := range []string{cfg.CPUProfile, cfg.MemProfile} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	// Two cases, an AEAD limit and the stage profile.
	if n := strings.Count(prog.String(), "\n"); n != 2+1+1 {
		t.Errorf("%d progress lines, want 4:\n%s", n, prog.String())
	}
}
