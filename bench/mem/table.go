package mem

import (
	"fmt"
	"strconv"
	"strings"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
)

// memHead is the in-memory table's header; memRow formats one result to
// match it. Cells hold no spaces, so a row splits back on white space.
var memHead = []string{"direction", "size", "peers", "GOMAXPROCS", "engine", "workers",
	"Gbit/s", "Mpps", "CPU ns/pkt", "allocs/pkt", "pipe/seq", "AEAD Gbit/s", "of AEAD"}

func memRow(r Result) []string {
	return []string{
		string(r.Direction), strconv.Itoa(r.PacketSize), strconv.Itoa(r.Peers), strconv.Itoa(r.Procs), r.Engine,
		core.OrDash(r.Workers > 0, strconv.Itoa(r.Workers)),
		fmt.Sprintf("%.2f", r.Gbps), fmt.Sprintf("%.3f", r.Mpps),
		fmt.Sprintf("%.0f", r.CPUNsPerPacket), fmt.Sprintf("%.3f", r.AllocsPerPacket),
		core.OrDash(r.VsSequential > 0, fmt.Sprintf("%.2f", r.VsSequential)),
		core.OrDash(r.AEADGbps > 0, fmt.Sprintf("%.2f", r.AEADGbps)),
		core.OrDash(r.AEADGbps > 0, fmt.Sprintf("%.0f%%", 100*r.OfAEAD)),
	}
}

// stageHead and stageRow are the per-stage CPU table's.
var stageHead = []string{"stage", "CPU s", "share"}

func stageRow(s cpuprof.StageShare) []string {
	return []string{s.Stage, fmt.Sprintf("%.3f", s.Seconds), fmt.Sprintf("%.1f%%", 100*s.Share)}
}

// WriteTable prints the in-memory figures: a row per case, grouped by
// direction, size and peers, then the share of CPU per stage.
func (mr *Report) WriteTable(b *strings.Builder, st core.Settings) {
	fmt.Fprintf(b, "\nIn memory: whole tunnels, real crypto; medians of %d; inner bytes (both: the two directions together);\n", st.Repeat)
	fmt.Fprintf(b, "CPU is the process's per packet; AEAD is ChaCha20-Poly1305 opening the same size on GOMAXPROCS cores.\n\n")
	t := core.Table{Head: memHead, Left: map[int]bool{0: true, 4: true}}
	for i, r := range mr.Results {
		if i > 0 {
			p := mr.Results[i-1]
			if p.Direction != r.Direction || p.PacketSize != r.PacketSize || p.Peers != r.Peers {
				t.Rows = append(t.Rows, nil)
			}
		}
		t.Rows = append(t.Rows, memRow(r))
	}
	t.Write(b, "")
	if s := mr.StageCPU; s != nil {
		c := s.Case
		fmt.Fprintf(b, "\nCPU per stage (pprof label \"stage\") in one profiled measurement: %s;\n", c)
		fmt.Fprintf(b, "%.2f s of CPU in %.2f s measured (%d samples); %s is the runtime and the harness.\n\n",
			s.CPUSeconds, s.WallSeconds, s.Samples, cpuprof.NoStage)
		t := core.Table{Head: stageHead, Left: map[int]bool{0: true}}
		for _, sh := range s.Stages {
			t.Rows = append(t.Rows, stageRow(sh))
		}
		t.Write(b, "  ")
	}
}
