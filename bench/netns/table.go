package netns

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"pipeguard/bench/core"
)

// netnsTCPHead is the namespace mode's TCP table's header; netnsTCPRow
// formats one result to match it.
var netnsTCPHead = []string{"impl", "engine", "queue mgmt", "direction", "streams", "Gbit/s", "retrans", "CPU %", "vs wg-go", "pipe/seq"}

func netnsTCPRow(run Run, tc TCPResult) []string {
	return []string{run.Impl, core.OrDash(run.Engine != "", run.Engine), queueMgmt(run), string(tc.Direction),
		strconv.Itoa(tc.Streams), fmt.Sprintf("%.2f", tc.Gbps), strconv.FormatInt(tc.Retransmits, 10),
		fmt.Sprintf("%.0f", tc.CPUPercent),
		core.OrDash(tc.VsWireguardGo > 0, fmt.Sprintf("%.2f", tc.VsWireguardGo)),
		core.OrDash(tc.VsSequential > 0, fmt.Sprintf("%.2f", tc.VsSequential))}
}

// WriteTable prints the netns mode's figures: TCP throughput and CPU per
// tunnel, direction and stream count; RTTs, CPU and peak RSS per tunnel;
// the ratios; and the warnings.
func (nr *Report) WriteTable(b *strings.Builder, st core.Settings) {
	fmt.Fprintf(b, "\nNetwork namespaces: two, joined by a veth pair; a tunnel process at each end, TUN MTU %d;\n", nr.MTU)
	fmt.Fprintf(b, "TCP by iperf3 (-t %d, received Gbit/s, congestion control %s), medians of %d; CPU: both tunnel processes, 100 = one core;\n",
		nr.TCPSeconds, cmp.Or(nr.CongestionControl, "unknown"), st.Repeat)
	fmt.Fprintf(b, "PipeGuard %s; wireguard-go %s; %s.\n\n", cmp.Or(nr.PipeGuardRevision, "(revision unknown)"), nr.WireguardGoVersion, nr.Iperf3Version)
	t := core.Table{Head: netnsTCPHead, Left: map[int]bool{0: true, 1: true, 2: true, 3: true}}
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
	t = core.Table{Head: []string{"impl", "engine", "queue mgmt", "RTT idle p50 ms", "p99 ms", "RTT loaded p50 ms", "p99 ms", "lost", "CPU %", "peak RSS MiB"},
		Left: map[int]bool{0: true, 1: true, 2: true}}
	for _, run := range nr.Runs {
		lost := run.PingIdle.Sent - run.PingIdle.Received + run.PingLoaded.Sent - run.PingLoaded.Received
		t.Rows = append(t.Rows, []string{run.Impl, core.OrDash(run.Engine != "", run.Engine), queueMgmt(run),
			fmt.Sprintf("%.3f", run.PingIdle.P50Ms), fmt.Sprintf("%.3f", run.PingIdle.P99Ms),
			fmt.Sprintf("%.3f", run.PingLoaded.P50Ms), fmt.Sprintf("%.3f", run.PingLoaded.P99Ms),
			strconv.Itoa(lost), fmt.Sprintf("%.0f", run.CPUPercent), fmt.Sprintf("%.1f", float64(run.PeakRSSBytes)/(1<<20))})
	}
	t.Write(b, "")
	fmt.Fprintf(b, "(ping -i %g from A to B through the tunnel: %d echoes idle, and during the outbound run with the most streams,\n"+
		"from 0.5 s after its start to 0.5 s before its end; an echo in flight when that series stops counts as lost)\n",
		nr.PingIntervalMs/1000, nr.PingIdleCount)
	nr.writeRatios(b)
	nr.writeLatency(b)
	for _, w := range nr.Warnings {
		fmt.Fprintf(b, "warning: %s\n", w)
	}
}

// writeRatios prints the ratios of TCP throughput per direction and
// stream count: each PipeGuard engine over wireguard-go, and pipeline over
// sequential.
func (nr *Report) writeRatios(b *strings.Builder) {
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
	row := func(name string, ok func(Run) bool, f func(TCPResult) float64) {
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
			e, off := run.Engine, run.Unmanaged
			name := e + " / wireguard-go"
			if off {
				name = e + " (qm off) / wireguard-go"
			}
			row(name, func(r Run) bool { return r.Impl == core.ImplPipeGuard && r.Engine == e && r.Unmanaged == off },
				func(tc TCPResult) float64 { return tc.VsWireguardGo })
		}
	}
	row("pipeline / sequential", func(r Run) bool {
		return r.Impl == core.ImplPipeGuard && r.Engine != engineSequential && !r.Unmanaged
	}, func(tc TCPResult) float64 { return tc.VsSequential })
	row("pipeline / sequential (qm off)", func(r Run) bool {
		return r.Impl == core.ImplPipeGuard && r.Engine != engineSequential && r.Unmanaged
	}, func(tc TCPResult) float64 { return tc.VsSequential })
	// What managing the queues costs in throughput: each engine with
	// queue management on over the same engine with it off.
	for _, run := range nr.Runs {
		off := nr.unmanagedTwin(run)
		if off == nil {
			continue
		}
		r := []string{run.Engine + " qm on / off"}
		for _, c := range cols {
			r = append(r, "-")
			on, o := gbpsOf(run, c), gbpsOf(*off, c)
			if on > 0 && o > 0 {
				r[len(r)-1] = fmt.Sprintf("%.2f", on/o)
			}
		}
		t.Rows = append(t.Rows, r)
	}
	if len(t.Rows) == 0 {
		return
	}
	b.WriteString("\n")
	t.Write(b, "")
}

// gbpsOf is run's throughput in case c, 0 if not measured.
func gbpsOf(run Run, c tcpCase) float64 {
	for _, tc := range run.TCP {
		if tc.Direction == c.Direction && tc.Streams == c.Streams {
			return tc.Gbps
		}
	}
	return 0
}
