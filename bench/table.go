package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
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
		writeNetns(&b, r.Netns, r.Settings)
	}
	if r.Loadgen != nil {
		writeLoadgen(&b, r.Loadgen, m, r.Settings)
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

// netnsTCPHead is the namespace mode's TCP table's header; netnsTCPRow
// formats one result to match it.
var netnsTCPHead = []string{"impl", "engine", "direction", "streams", "Gbit/s", "retrans", "CPU %", "vs wg-go", "pipe/seq"}

func netnsTCPRow(run NetnsRun, tc TCPResult) []string {
	return []string{run.Impl, core.OrDash(run.Engine != "", run.Engine), string(tc.Direction),
		strconv.Itoa(tc.Streams), fmt.Sprintf("%.2f", tc.Gbps), strconv.FormatInt(tc.Retransmits, 10),
		fmt.Sprintf("%.0f", tc.CPUPercent),
		core.OrDash(tc.VsWireguardGo > 0, fmt.Sprintf("%.2f", tc.VsWireguardGo)),
		core.OrDash(tc.VsSequential > 0, fmt.Sprintf("%.2f", tc.VsSequential))}
}

func writeNetns(b *strings.Builder, nr *NetnsReport, st core.Settings) {
	fmt.Fprintf(b, "\nNetwork namespaces: two, joined by a veth pair; a tunnel process at each end, TUN MTU %d;\n", nr.MTU)
	fmt.Fprintf(b, "TCP by iperf3 (-t %d, received Gbit/s), medians of %d; CPU: both tunnel processes, 100 = one core;\n", nr.TCPSeconds, st.Repeat)
	fmt.Fprintf(b, "PipeGuard %s; wireguard-go %s; %s.\n\n", cmp.Or(nr.PipeGuardRevision, "(revision unknown)"), nr.WireguardGoVersion, nr.Iperf3Version)
	t := core.Table{Head: netnsTCPHead, Left: map[int]bool{0: true, 1: true, 2: true}}
	for i, run := range nr.Runs {
		if i > 0 {
			t.Rows = append(t.Rows, nil)
		}
		for _, tc := range run.TCP {
			t.Rows = append(t.Rows, netnsTCPRow(run, tc))
		}
	}
	t.Write(b, "")
	b.WriteString("\n")
	t = core.Table{Head: []string{"impl", "engine", "RTT idle p50 ms", "p99 ms", "RTT loaded p50 ms", "p99 ms", "lost", "CPU %", "peak RSS MiB"},
		Left: map[int]bool{0: true, 1: true}}
	for _, run := range nr.Runs {
		lost := run.PingIdle.Sent - run.PingIdle.Received + run.PingLoaded.Sent - run.PingLoaded.Received
		t.Rows = append(t.Rows, []string{run.Impl, core.OrDash(run.Engine != "", run.Engine),
			fmt.Sprintf("%.3f", run.PingIdle.P50Ms), fmt.Sprintf("%.3f", run.PingIdle.P99Ms),
			fmt.Sprintf("%.3f", run.PingLoaded.P50Ms), fmt.Sprintf("%.3f", run.PingLoaded.P99Ms),
			strconv.Itoa(lost), fmt.Sprintf("%.0f", run.CPUPercent), fmt.Sprintf("%.1f", float64(run.PeakRSSBytes)/(1<<20))})
	}
	t.Write(b, "")
	fmt.Fprintf(b, "(ping -i %g from A to B through the tunnel: %d echoes idle, and during the outbound run with the most streams,\n"+
		"from 0.5 s after its start to 0.5 s before its end; an echo in flight when that series stops counts as lost)\n",
		nr.PingIntervalMs/1000, nr.PingIdleCount)
	writeNetnsRatios(b, nr)
	for _, w := range nr.Warnings {
		fmt.Fprintf(b, "warning: %s\n", w)
	}
}

// writeNetnsRatios prints the ratios of TCP throughput per direction and
// stream count: each PipeGuard engine over wireguard-go, and pipeline over
// sequential.
func writeNetnsRatios(b *strings.Builder, nr *NetnsReport) {
	var head []string
	var cols []tcpCase
	for _, run := range nr.Runs {
		for _, tc := range run.TCP {
			c := tcpCase{tc.Direction, tc.Streams}
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
				head = append(head, fmt.Sprintf("%s×%d", tc.Direction, tc.Streams))
			}
		}
	}
	t := core.Table{Head: append([]string{"TCP Gbit/s ratio"}, head...), Left: map[int]bool{0: true}}
	row := func(name string, ok func(NetnsRun) bool, f func(TCPResult) float64) {
		for _, run := range nr.Runs {
			if !ok(run) {
				continue
			}
			r := []string{name}
			for _, c := range cols {
				v := 0.0
				for _, tc := range run.TCP {
					if tc.Direction == c.Direction && tc.Streams == c.Streams {
						v = f(tc)
					}
				}
				r = append(r, core.OrDash(v > 0, fmt.Sprintf("%.2f", v)))
			}
			t.Rows = append(t.Rows, r)
		}
	}
	for _, run := range nr.Runs {
		if run.Impl == core.ImplPipeGuard {
			e := run.Engine
			row(e+" / wireguard-go", func(r NetnsRun) bool { return r.Impl == core.ImplPipeGuard && r.Engine == e },
				func(tc TCPResult) float64 { return tc.VsWireguardGo })
		}
	}
	row("pipeline / sequential", func(r NetnsRun) bool { return r.Impl == core.ImplPipeGuard && r.Engine != engineSequential },
		func(tc TCPResult) float64 { return tc.VsSequential })
	if len(t.Rows) == 0 {
		return
	}
	b.WriteString("\n")
	t.Write(b, "")
}
