package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
)

// WriteTable prints the report as aligned tables: the machine, the
// namespace mode's figures when it ran, then the in-memory sweep and the
// per-stage CPU share when that ran.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "PipeGuard bench: %s, %d cores, %s, %s, %s", m.CPUModel, m.Cores, m.GoVersion, m.Kernel, m.Date)
	if m.LoadAverage != "" {
		fmt.Fprintf(&b, ", load average %s", m.LoadAverage)
	}
	b.WriteString("\n")
	if r.Soak != nil {
		r.Soak.WriteTable(&b)
	}
	if r.Netns != nil {
		r.Netns.WriteTable(&b, r.Settings)
	}
	if r.Loadgen != nil {
		r.Loadgen.WriteTable(&b, m, r.Settings)
	}
	if r.Mem != nil {
		writeMem(&b, r.Mem, r.Settings)
	}
	if r.Flood != nil {
		r.Flood.WriteTable(&b, r.Settings)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// memHead is the in-memory table's header; memRow formats one result to
// match it. Cells hold no spaces, so a row splits back on white space.
var memHead = []string{"direction", "size", "peers", "GOMAXPROCS", "engine", "workers",
	"Gbit/s", "Mpps", "CPU ns/pkt", "allocs/pkt", "pipe/seq", "AEAD Gbit/s", "of AEAD"}

func memRow(r MemResult) []string {
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

func writeMem(b *strings.Builder, mr *MemReport, st core.Settings) {
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
