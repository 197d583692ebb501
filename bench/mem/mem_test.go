package mem

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

// TestSmokeMem runs the in-memory mode on a tiny sweep, a few thousand
// packets a measurement, and checks that the table on stdout and the JSON
// file agree figure for figure, that the chart is written, and that
// progress came one line per measurement.
func TestSmokeMem(t *testing.T) {
	if testing.Short() {
		t.Skip("runs tunnels")
	}
	const packets = 3000
	var prog bytes.Buffer
	cfg := Config{
		Packets: packets,
		Sizes:   []int{256},
		Peers:   []int{2},
		Procs:   []int{runtime.NumCPU()},
		Workers: []int{0},
		Profile: true,
		Out:     core.Out{W: &prog},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, profs, err := Measure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 3 directions × 2 engines, one AEAD limit, and the stage profile.
	if n := len(rep.Results); n != 6 {
		t.Fatalf("%d results, want 6", n)
	}
	st := core.Settings{Repeat: 1}
	var b strings.Builder
	rep.WriteTable(&b, st)
	checkTable(t, b.String(), rep)
	if rep.StageCPU == nil || len(rep.StageCPU.Stages) == 0 {
		t.Error("no CPU-per-stage figures")
	}
	for _, r := range rep.Results {
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
	// The report survives its JSON.
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back *Report
	if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, rep) {
		t.Errorf("JSON round trip: %v", err)
	}
	var chart bytes.Buffer
	if err := svg.Write(&chart, rep.Chart(core.DescribeMachine(nil), st)); err != nil {
		t.Fatal(err)
	}
	svgtest.Parse(t, chart.Bytes())
	if p, err := cpuprof.Merge(profs); p == nil || err != nil {
		t.Errorf("interval profiles: %v", err)
	}
	if n := strings.Count(prog.String(), "\n"); n != 6+1+1 {
		t.Errorf("%d progress lines, want 8:\n%s", n, prog.String())
	}
}

func TestSweep(t *testing.T) {
	c := Config{Quick: true, Procs: []int{1, 2}}.WithDefaults()
	cases := c.cases()
	// 3 directions × 2 sizes × 1 peer × 2 GOMAXPROCS × (sequential + pipeline at workers = GOMAXPROCS).
	if len(cases) != 24 {
		t.Fatalf("%d quick cases", len(cases))
	}
	for _, mc := range cases {
		if mc.Engine == "pipeline" && mc.Workers != mc.Procs || mc.Engine == "sequential" && mc.Workers != 0 {
			t.Errorf("case %v", mc)
		}
	}
	full := Config{Procs: []int{1, 2}}.WithDefaults()
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
