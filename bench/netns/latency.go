package netns

import (
	"fmt"
	"strconv"
	"strings"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

// The latency-under-load table: what a packet that is not part of a bulk
// transfer waits for while one runs, measured as the field measures it
// (flent's RRUL test): ping, and a sparse UDP request/response probe,
// idle and during four TCP streams outbound, inbound, and both ways at
// once, with the TCP throughput of the same period beside them.

// latencyLoads are the table's rows, in order: no load, then the TCP
// runs with the most streams each way and both ways at once.
var latencyLoads = [numLatencyLoads]core.Direction{"idle", core.Outbound, core.Inbound, core.Both}

const numLatencyLoads = 4

// latSample is what one repeat measured in one row.
type latSample struct {
	Gbps  float64 // total received, both ways for Both; 0 idle
	Ping  nsenv.PingResult
	Probe probeResult
	// Path is a ping from A to B's outer address, beside the tunnel over
	// the same veth in the same window: what any packet between the two
	// namespaces waits under this load (the kernel's queues, and the
	// processes that share the cores), with no tunnel queue in its way.
	Path nsenv.PingResult
	// PathProbe is the probe sent the same way, to the same echo server
	// at B's outer address: what a userspace exchange between the two
	// namespaces waits under this load without the tunnel (its two
	// processes wait for the cores the load fills, as the tunnel's may).
	PathProbe probeResult
}

// LatencyRow is one row of the table: medians of the throughput over the
// repeats, and the pooled ping and probe series.
type LatencyRow struct {
	Load    core.Direction `json:"load"`    // "idle", or the TCP runs' direction
	Streams int            `json:"streams"` // TCP streams each way; 0 idle
	Gbps    float64        `json:"gbit_per_s"`
	Ping    Latency        `json:"ping"`
	Probe   Latency        `json:"probe"` // the kernels' round trip, the echo server's turnaround out
	// ProbeApp is the same probe's round trip as the sending process saw
	// it: with each end's wait for a core to read and answer.
	ProbeApp     Latency `json:"probe_app"`
	Path         Latency `json:"path_ping"`      // outside the tunnel (latSample.Path)
	PathProbe    Latency `json:"path_probe"`     // outside the tunnel (latSample.PathProbe)
	PathProbeApp Latency `json:"path_probe_app"` // outside the tunnel, as the process saw it
}

// Latency sums up a series of round trips: how many were sent and
// answered, and percentiles by nearest rank, in milliseconds.
type Latency struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p99_9_ms"`
}

// Lost is the requests that got no answer.
func (l Latency) Lost() int { return l.Sent - l.Received }

func latencyOf(sent, received int, rtts []float64) Latency {
	return Latency{Sent: sent, Received: received, P50Ms: core.Percentile(rtts, 50),
		P99Ms: core.Percentile(rtts, 99), P999Ms: core.Percentile(rtts, 99.9)}
}

// summarizeLatency pools the repeats' samples of one tunnel into rows.
func summarizeLatency(streams int, samples []netnsSample) []LatencyRow {
	if len(samples) == 0 {
		return nil
	}
	rows := make([]LatencyRow, len(latencyLoads))
	for i, load := range latencyLoads {
		var ping, path nsenv.PingResult
		var probe, pathProbe probeResult
		var gbps []float64
		for _, s := range samples {
			l := s.Latency[i]
			ping = poolPing(ping, l.Ping)
			path = poolPing(path, l.Path)
			probe = probe.pool(l.Probe)
			pathProbe = pathProbe.pool(l.PathProbe)
			gbps = append(gbps, l.Gbps)
		}
		r := LatencyRow{Load: load, Gbps: core.Median(gbps),
			Ping:         latencyOf(ping.Sent, ping.Received, ping.RTTs),
			Probe:        latencyOf(probe.Sent, probe.Received, probe.RTTs),
			ProbeApp:     latencyOf(probe.Sent, probe.Received, probe.AppRTTs),
			Path:         latencyOf(path.Sent, path.Received, path.RTTs),
			PathProbe:    latencyOf(pathProbe.Sent, pathProbe.Received, pathProbe.RTTs),
			PathProbeApp: latencyOf(pathProbe.Sent, pathProbe.Received, pathProbe.AppRTTs)}
		if i > 0 {
			r.Streams = streams
		}
		rows[i] = r
	}
	return rows
}

// aboveIdle is how much later than idle a loaded row's worse p99 (ping's
// or the probe's) comes, against its own idle p50: the goal's measure.
func aboveIdle(idle, loaded LatencyRow) float64 {
	return max(loaded.Ping.P99Ms-idle.Ping.P50Ms, loaded.Probe.P99Ms-idle.Probe.P50Ms)
}

// writeLatency prints the latency-under-load table, with each managed
// engine's throughput beside the same engine's unmanaged, and the summary
// lines: per tunnel, how many milliseconds above its idle p50 its p99
// came under each load.
func (nr *Report) writeLatency(b *strings.Builder) {
	if !nr.hasLatency() {
		return
	}
	t := core.Table{Head: []string{"impl", "engine", "queue mgmt", "load", "TCP Gbit/s", "vs off",
		"ping p50 ms", "p99 ms", "p99.9 ms", "probe p50 ms", "p99 ms", "lost", "app p50", "p99",
		"path ping p50", "p99", "path probe p50", "p99", "app p50", "p99"},
		Left: map[int]bool{0: true, 1: true, 2: true, 3: true}}
	for i, run := range nr.Runs {
		if i > 0 {
			t.Rows = append(t.Rows, nil)
		}
		off := nr.unmanagedTwin(run)
		for j, row := range run.Latency {
			load := string(row.Load)
			if row.Streams > 0 {
				load = fmt.Sprintf("%s×%d", row.Load, row.Streams)
			}
			vs := ""
			if off != nil && j < len(off.Latency) && row.Gbps > 0 {
				vs = fmt.Sprintf("%.2f", core.Ratio(row.Gbps, off.Latency[j].Gbps))
			}
			t.Rows = append(t.Rows, []string{run.Impl, core.OrDash(run.Engine != "", run.Engine), queueMgmt(run), load,
				core.OrDash(row.Gbps > 0, fmt.Sprintf("%.2f", row.Gbps)), core.OrDash(vs != "", vs),
				ms(row.Ping.P50Ms), ms(row.Ping.P99Ms), ms(row.Ping.P999Ms),
				ms(row.Probe.P50Ms), ms(row.Probe.P99Ms), strconv.Itoa(row.Probe.Lost()),
				ms(row.ProbeApp.P50Ms), ms(row.ProbeApp.P99Ms),
				ms(row.Path.P50Ms), ms(row.Path.P99Ms), ms(row.PathProbe.P50Ms), ms(row.PathProbe.P99Ms),
				ms(row.PathProbeApp.P50Ms), ms(row.PathProbeApp.P99Ms)})
		}
	}
	b.WriteString("\nLatency under load: ping -i 0.01 and a UDP probe (64-byte requests, 100 a second, answered by an echo\n" +
		"server in B), both from A through the tunnel, idle and in the middle of each TCP run (from 0.5 s after its\n" +
		"start to 0.5 s before its end); TCP Gbit/s is the run's total, both ways for \"both\"; vs off: against the\n" +
		"same engine with --queue-management off; probe: its round trip as irtt and TWAMP time one, from the\n" +
		"request's send to the answer's arrival in A, less the echo server's turnaround, each send and arrival as\n" +
		"its kernel stamped it (as ping's answers come from the kernel); app: the same round trips as the sending\n" +
		"process saw them, from its clock read before the send, with each end's wait for a core;\n" +
		"lost: probes unanswered within 1 s; path: ping and probe from A to B's veth address in the same window,\n" +
		"outside the tunnel (what the kernel and the shared cores alone add).\n\n")
	t.Write(b, "")
	b.WriteString("\n")
	nr.writeAboveIdle(b)
	nr.writeAbovePath(b)
}

// writeAboveIdle prints, for each tunnel with queue management as it
// ships (pipeline, sequential, wireguard-go), its loaded p99 above its
// idle p50, in milliseconds, per load.
func (nr *Report) writeAboveIdle(b *strings.Builder) {
	// The summary's fixed form: values right-aligned under the load names.
	fmt.Fprintf(b, "%-39s   %s  %s  %s\n", "loaded latency (ms above idle p50, p99)", "outbound", "inbound", "both")
	for _, name := range []string{"pipeline", "sequential", "wireguard-go"} {
		for _, run := range nr.Runs {
			if run.Unmanaged || (run.Engine != name && !(name == core.ImplWireguardGo && run.Impl == core.ImplWireguardGo)) || len(run.Latency) != len(latencyLoads) {
				continue
			}
			idle := run.Latency[0]
			// " %5.2f": right under "both" up to 99.99, as the others.
			fmt.Fprintf(b, "%-42s%8.2f  %7.2f %5.2f\n", name,
				aboveIdle(idle, run.Latency[1]), aboveIdle(idle, run.Latency[2]), aboveIdle(idle, run.Latency[3]))
		}
	}
}

// writeAbovePath prints, for the same tunnels, their loaded ping and
// probe p50 and p99 above those of the path outside the tunnel in the
// same window: the latency the tunnel itself adds, apart from what every
// exchange between the namespaces waits on a machine whose cores the
// load fills.
func (nr *Report) writeAbovePath(b *strings.Builder) {
	for _, series := range []struct {
		name         string
		tunnel, path func(LatencyRow) Latency
	}{
		{"ping", func(r LatencyRow) Latency { return r.Ping }, func(r LatencyRow) Latency { return r.Path }},
		{"probe", func(r LatencyRow) Latency { return r.Probe }, func(r LatencyRow) Latency { return r.PathProbe }},
		{"probe app", func(r LatencyRow) Latency { return r.ProbeApp }, func(r LatencyRow) Latency { return r.PathProbeApp }},
	} {
		head := "added by the tunnel (" + series.name + " ms above path, p50 / p99)"
		fmt.Fprintf(b, "%-*s %12s %12s %12s\n", len(head), head, "outbound", "inbound", "both")
		for _, name := range []string{"pipeline", "sequential", "wireguard-go"} {
			for _, run := range nr.Runs {
				if run.Unmanaged || (run.Engine != name && !(name == core.ImplWireguardGo && run.Impl == core.ImplWireguardGo)) || len(run.Latency) != len(latencyLoads) {
					continue
				}
				cell := func(r LatencyRow) string {
					t, p := series.tunnel(r), series.path(r)
					if p.Received == 0 {
						return "-"
					}
					return fmt.Sprintf("%.2f/%.2f", t.P50Ms-p.P50Ms, t.P99Ms-p.P99Ms)
				}
				fmt.Fprintf(b, "%-*s %12s %12s %12s\n", len(head), name, cell(run.Latency[1]), cell(run.Latency[2]), cell(run.Latency[3]))
			}
		}
	}
}

func (nr *Report) hasLatency() bool {
	for _, run := range nr.Runs {
		if len(run.Latency) > 0 {
			return true
		}
	}
	return false
}

// unmanagedTwin is the run of run's engine with queue management off, if
// run is PipeGuard's with it on and that run was measured.
func (nr *Report) unmanagedTwin(run Run) *Run {
	if run.Impl != core.ImplPipeGuard || run.Unmanaged {
		return nil
	}
	for i := range nr.Runs {
		if r := &nr.Runs[i]; r.Impl == run.Impl && r.Engine == run.Engine && r.Unmanaged {
			return r
		}
	}
	return nil
}

// queueMgmt says whether run's tunnel managed its queues.
func queueMgmt(run Run) string {
	switch {
	case run.Impl != core.ImplPipeGuard:
		return "-"
	case run.Unmanaged:
		return "off"
	}
	return "on"
}

func ms(v float64) string { return fmt.Sprintf("%.3f", v) }
