package loadgen

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
	"pipeguard/stages"
)

// The load generator mode's plan, report and arithmetic, apart from the
// Linux code that runs it (loadgen_linux.go) and the peer it plays
// (loadpeer.go): one tunnel process under test in namespace A, the harness
// as its peer in namespace B, and the tunnel's delivery counted from its
// TUN interface's counters (inbound) or by the harness (outbound).

// Loadgen addresses, besides nsenv's: the inner destination of
// the inbound load, blackholed in namespace A so the kernel drops it at
// its first route lookup.
var loadSink = netip.MustParseAddr("10.203.0.1")

// loadSinkRoute is the blackhole route that holds loadSink.
const loadSinkRoute = "10.203.0.0/24"

// Timing of one direction's measurement: the generator runs loadWarmup
// before the measured interval, so that the window, the socket buffers
// and the tunnel's queues have settled.
const loadWarmup = 300 * time.Millisecond

// loadgenScheduling is the tunnel's environment setting of its CPU
// scheduling class: the fair one. By default PipeGuard's threads are
// real-time (cmd/headless-client/cpusched), ahead of every normal task;
// here that would starve the harness on its pinned core, and the figures
// would measure the generator, not the tunnel (measured: pipeline 2.83
// Gbit/s inbound with the generator waiting 9% of the time, against
// 5.96 in the fair class).
const loadgenScheduling = "PIPEGUARD_CPU_SCHEDULING=normal"

// Config is one run of the loadgen mode. The zero value runs it
// with the defaults named in the comments, which Quick makes shorter.
type Config struct {
	Quick bool
	// Duration is the measured time per tunnel and direction: default
	// 10 s, quick 2 s, at most maxLoadDuration.
	Duration time.Duration
	Repeat   int             // figures are medians of this many repeats; default 1
	Engines  []stages.Engine // PipeGuard's, each measured beside wireguard-go; default both
	// Managed and Unmanaged: PipeGuard with queue management on, off
	// (--queue-management off), or each engine both ways, what managing
	// the queues costs one end in throughput. Neither set: on.
	Managed, Unmanaged bool
	Out                core.Out // progress
}

// Defaults of the measured time per direction.
const (
	defaultLoadDuration = 10 * time.Second
	quickLoadDuration   = 2 * time.Second
)

// WithDefaults fills c's zero fields.
func (c Config) WithDefaults() Config {
	if c.Duration == 0 {
		c.Duration = defaultLoadDuration
		if c.Quick {
			c.Duration = quickLoadDuration
		}
	}
	c.Repeat = max(c.Repeat, 1)
	if len(c.Engines) == 0 {
		c.Engines = []stages.Engine{stages.EngineSequential, stages.EnginePipeline}
	}
	if !c.Unmanaged {
		c.Managed = true
	}
	return c
}

// MaxDuration bounds the measured time per direction: each tunnel's
// cells run on the session of one handshake (the inbound ring is sealed
// under it), and handshake, readiness check, sealing, warm-up and cell
// must end well before the session reaches Rekey-After-Time (120 s), so
// that no rekey replaces it under the ring.
const MaxDuration = 100 * time.Second

// engineSequential names the baseline engine in the ratios.
const engineSequential = string(stages.EngineSequential)

// loadDirections are measured for each tunnel, in this order.
var loadDirections = []core.Direction{core.Inbound, core.Outbound}

// Report holds the loadgen mode's figures: one tunnel process at a
// time in namespace A, the harness playing its peer in namespace B (a
// real handshake with package noise), full-size inner UDP packets.
type Report struct {
	MTU              int     `json:"mtu"`                // of the tunnel interface
	InnerPacketBytes int     `json:"inner_packet_bytes"` // every inner packet's size
	Seconds          float64 `json:"seconds"`            // measured per direction, after the warm-up
	WarmupSeconds    float64 `json:"warmup_seconds"`
	// Generator says how the generator ran: threads, pinning, offloads.
	Generator string `json:"generator"`
	// RingPackets is the size of the pre-sealed ring of inbound
	// datagrams, RingBytes its memory; PeakRSSBytes is the harness's
	// peak resident set (VmHWM), the ring's pages included.
	RingPackets  int    `json:"ring_packets"`
	RingBytes    uint64 `json:"ring_bytes"`
	PeakRSSBytes uint64 `json:"peak_rss_bytes,omitempty"`
	// RingMapSeconds is the time mapping the ring's memory and faulting
	// it in took, once, before the first cell.
	RingMapSeconds float64 `json:"ring_map_seconds,omitempty"`
	// LoadAverageEnd is /proc/loadavg's first three fields at the end
	// (Machine.LoadAverage has them at the start).
	LoadAverageEnd     string `json:"load_average_end"`
	WireguardGoVersion string `json:"wireguard_go_version"`
	PipeGuardRevision  string `json:"pipeguard_revision,omitempty"`
	Runs               []Run  `json:"runs"`
	// Warnings are things that went wrong without spoiling a figure: a
	// handshake mid-run, a stall, a generator that may have set the pace.
	Warnings []string `json:"warnings,omitempty"`
}

// Run is one implementation (and engine) under load.
type Run struct {
	Impl      string   `json:"impl"`
	Engine    string   `json:"engine,omitempty"`
	Unmanaged bool     `json:"queue_management_off,omitempty"`
	Args      []string `json:"args"`    // the tunnel program's arguments
	Results   []Result `json:"results"` // inbound, then outbound
}

// kind is the tunnel r measured.
func (r Run) kind() core.Kind {
	return core.Kind{Impl: r.Impl, Engine: r.Engine, Unmanaged: r.Unmanaged}
}

// Result is one direction's figures, medians over the repeats in
// Samples, and its ratios of Gbit/s to the same direction over the
// sequential engine and over wireguard-go, and a PipeGuard result's over
// the same engine with queue management off (0 when not measured).
type Result struct {
	Direction core.Direction `json:"direction"`
	Gbps      float64        `json:"gbit_per_s"` // inner bytes delivered
	Mpps      float64        `json:"mpps"`       // inner packets delivered
	// TunnelCPUPercent is the tunnel process's CPU (user and system, from
	// /proc/<pid>/stat); GeneratorCPUPercent the harness's own (getrusage
	// RUSAGE_SELF): sender, receiver and all. 100 = one core.
	TunnelCPUPercent    float64 `json:"tunnel_cpu_percent"`
	GeneratorCPUPercent float64 `json:"generator_cpu_percent"`
	// OfferedMpps is what the generator sent; LostPercent the share of it
	// not delivered.
	OfferedMpps float64 `json:"offered_mpps"`
	LostPercent float64 `json:"lost_percent"`
	// WaitPercent is the share of the time the generator waited for the
	// tunnel (its window full): near 100, the tunnel set the pace; near 0,
	// the generator did, and the figure is the generator's.
	WaitPercent float64 `json:"wait_percent"`
	// SealSeconds is the wall time the harness took to seal the ring
	// before the cell (inbound; on every CPU, outside every figure).
	SealSeconds     float64  `json:"seal_seconds,omitempty"`
	VsSequential    float64  `json:"vs_sequential"`
	VsWireguardGo   float64  `json:"vs_wireguard_go"`
	VsManagementOff float64  `json:"vs_queue_management_off,omitempty"`
	Samples         []Sample `json:"samples"`
}

// Sample is one repeat's raw counts over the measured interval.
type Sample struct {
	Packets             uint64  `json:"packets"` // inner packets delivered
	Offered             uint64  `json:"offered"` // inner packets the generator sent
	Seconds             float64 `json:"seconds"`
	TunnelCPUSeconds    float64 `json:"tunnel_cpu_seconds"`
	GeneratorCPUSeconds float64 `json:"generator_cpu_seconds"`
	WaitSeconds         float64 `json:"wait_seconds"`
	// Drops are the drop events the kernel counted (inbound, the tunnel
	// socket's RcvbufErrors; outbound, the TUN's transmit drops), each up
	// to a GSO run of packets.
	Drops  uint64 `json:"drops,omitempty"`
	Stalls int    `json:"stalls,omitempty"` // windows written off: loss no counter saw
	// Inbound: the datagrams sealed ahead for the cell and the time that
	// took, and the datagrams of the measured interval sealed on the fly
	// because the ring ran out (their sealing is in the generator's CPU).
	SealedAhead uint64  `json:"sealed_ahead,omitempty"`
	SealSeconds float64 `json:"seal_seconds,omitempty"`
	SealedLive  uint64  `json:"sealed_live,omitempty"`
}

func (s Sample) mpps() float64 { return core.Ratio(float64(s.Packets), s.Seconds) / 1e6 }
func (s Sample) gbps() float64 { return s.mpps() * loadInnerSize * 8 / 1e3 }

// lostPercent is the share of the offered packets not delivered. Both are
// counted over the same interval, so the packets in flight at its ends
// (at most a window) blur it by a fraction of a percent.
func (s Sample) lostPercent() float64 {
	if s.Offered <= s.Packets {
		return 0
	}
	return 100 * float64(s.Offered-s.Packets) / float64(s.Offered)
}

// summarizeLoadgen turns the samples (samples[i][d] are kinds[i]'s repeats
// in loadDirections[d]) into runs: medians over the repeats, then the
// ratios.
func summarizeLoadgen(kinds []core.Kind, args [][]string, samples [][][]Sample) []Run {
	runs := make([]Run, len(kinds))
	for i, k := range kinds {
		r := Run{Impl: k.Impl, Engine: k.Engine, Unmanaged: k.Unmanaged, Args: args[i]}
		for d, dir := range loadDirections {
			ss := samples[i][d]
			r.Results = append(r.Results, Result{
				Direction: dir,
				Gbps:      core.MedianBy(ss, Sample.gbps),
				Mpps:      core.MedianBy(ss, Sample.mpps),
				TunnelCPUPercent: core.MedianBy(ss, func(s Sample) float64 {
					return 100 * core.Ratio(s.TunnelCPUSeconds, s.Seconds)
				}),
				GeneratorCPUPercent: core.MedianBy(ss, func(s Sample) float64 {
					return 100 * core.Ratio(s.GeneratorCPUSeconds, s.Seconds)
				}),
				OfferedMpps: core.MedianBy(ss, func(s Sample) float64 { return core.Ratio(float64(s.Offered), s.Seconds) / 1e6 }),
				LostPercent: core.MedianBy(ss, Sample.lostPercent),
				WaitPercent: core.MedianBy(ss, func(s Sample) float64 { return 100 * core.Ratio(s.WaitSeconds, s.Seconds) }),
				SealSeconds: core.MedianBy(ss, func(s Sample) float64 { return s.SealSeconds }),
				Samples:     ss,
			})
		}
		runs[i] = r
	}
	fillLoadgenRatios(runs)
	return runs
}

// fillLoadgenRatios sets each PipeGuard result's ratio to wireguard-go's
// in the same direction, each pipeline result's to the sequential
// engine's with queue management alike, and each result with queue
// management on to its engine's with it off.
func fillLoadgenRatios(runs []Run) {
	find := func(k core.Kind, d core.Direction) float64 {
		for _, r := range runs {
			if r.kind() == k {
				for _, res := range r.Results {
					if res.Direction == d {
						return res.Gbps
					}
				}
			}
		}
		return 0
	}
	for i := range runs {
		r := &runs[i]
		for j := range r.Results {
			res := &r.Results[j]
			res.VsWireguardGo, res.VsSequential, res.VsManagementOff = 0, 0, 0
			if r.Impl == core.ImplPipeGuard {
				res.VsWireguardGo = core.Ratio(res.Gbps, find(core.Kind{Impl: core.ImplWireguardGo}, res.Direction))
				if r.Engine != engineSequential {
					seq := r.kind()
					seq.Engine = engineSequential
					res.VsSequential = core.Ratio(res.Gbps, find(seq, res.Direction))
				}
				if !r.Unmanaged {
					off := r.kind()
					off.Unmanaged = true
					res.VsManagementOff = core.Ratio(res.Gbps, find(off, res.Direction))
				}
			}
		}
	}
}

// loadWaitWarning is the share of time waiting below which the generator,
// not the tunnel, may have set the pace.
const loadWaitWarning = 10

// loadgenWarnings are the warnings the figures themselves raise.
func loadgenWarnings(runs []Run) []string {
	var out []string
	for _, r := range runs {
		for _, res := range r.Results {
			k := r.kind()
			stalls := 0
			for _, s := range res.Samples {
				stalls += s.Stalls
			}
			var live, offered uint64
			for _, s := range res.Samples {
				live += s.SealedLive
				offered += s.Offered
			}
			if live > 0 {
				out = append(out, fmt.Sprintf("%s %s: the pre-sealed ring ran out; %.1f%% of the datagrams offered were sealed on the fly, in the generator's CPU",
					k, res.Direction, 100*core.Ratio(float64(live), float64(offered))))
			}
			if stalls > 0 {
				out = append(out, fmt.Sprintf("%s %s: %d stall(s) of %v with nothing delivered and packets in flight (the tunnel waiting for a CPU, or loss no counter sees)",
					k, res.Direction, stalls, stallAfter))
			}
			if res.WaitPercent < loadWaitWarning {
				out = append(out, fmt.Sprintf("%s %s: the generator waited for the tunnel only %.0f%% of the time: it may have set the pace",
					k, res.Direction, res.WaitPercent))
			}
			if res.GeneratorCPUPercent >= res.TunnelCPUPercent {
				out = append(out, fmt.Sprintf("%s %s: the generator used as much CPU as the tunnel (%.0f%% against %.0f%%)",
					k, res.Direction, res.GeneratorCPUPercent, res.TunnelCPUPercent))
			}
		}
	}
	return out
}

// loadgenHead is the loadgen table's header; loadgenRow formats one
// result to match it. Cells hold no spaces.
var loadgenHead = []string{"impl", "engine", "queues", "direction", "Gbit/s", "Mpps", "tunnel CPU %", "gen CPU %",
	"offered Mpps", "lost %", "gen wait %", "vs wg-go", "pipe/seq", "on/off"}

func loadgenRow(run Run, res Result) []string {
	queues := "-"
	if run.Impl == core.ImplPipeGuard {
		queues = "managed"
		if run.Unmanaged {
			queues = "off"
		}
	}
	return []string{run.Impl, core.OrDash(run.Engine != "", run.Engine), queues, string(res.Direction),
		fmt.Sprintf("%.2f", res.Gbps), fmt.Sprintf("%.3f", res.Mpps),
		fmt.Sprintf("%.0f", res.TunnelCPUPercent), fmt.Sprintf("%.0f", res.GeneratorCPUPercent),
		fmt.Sprintf("%.3f", res.OfferedMpps), fmt.Sprintf("%.1f", res.LostPercent), fmt.Sprintf("%.0f", res.WaitPercent),
		core.OrDash(res.VsWireguardGo > 0, fmt.Sprintf("%.2f", res.VsWireguardGo)),
		core.OrDash(res.VsSequential > 0, fmt.Sprintf("%.2f", res.VsSequential)),
		core.OrDash(res.VsManagementOff > 0, fmt.Sprintf("%.2f", res.VsManagementOff))}
}

// WriteTable prints the loadgen mode's figures: how the generator ran,
// the ring, the load averages, a row per tunnel and direction, the ratio
// table and the warnings; m is the machine it ran on.
func (lr *Report) WriteTable(b *strings.Builder, m core.Machine, st core.Settings) {
	fmt.Fprintf(b, "\nLoad generator: one tunnel process in namespace A (TUN MTU %d); the harness in namespace B is its peer\n", lr.MTU)
	fmt.Fprintf(b, "(a noise handshake, then %d-byte inner UDP packets sealed in, or received and 1 in %d authenticated out);\n",
		lr.InnerPacketBytes, loadSampleEvery)
	fmt.Fprintf(b, "%.0f s per direction after %.1f s warm-up, medians of %d; delivered inner bytes (inbound: the TUN's counters);\n",
		lr.Seconds, lr.WarmupSeconds, st.Repeat)
	fmt.Fprintf(b, "CPU: 100 = one core; tunnel from /proc/<pid>/stat, gen(erator) the harness's own getrusage.\n")
	fmt.Fprintf(b, "PipeGuard runs in the fair scheduling class here (%s): the harness stands for another machine,\n"+
		"and a real-time tunnel would take its core from it.\n", loadgenScheduling)
	fmt.Fprintf(b, "Generator: %s.\n", lr.Generator)
	writeLoadgenSealing(b, lr)
	fmt.Fprintf(b, "Load average: %s at the start, %s at the end.\n", cmp.Or(m.LoadAverage, "unknown"), cmp.Or(lr.LoadAverageEnd, "unknown"))
	fmt.Fprintf(b, "PipeGuard %s; wireguard-go %s.\n\n", cmp.Or(lr.PipeGuardRevision, "(revision unknown)"), lr.WireguardGoVersion)
	t := core.Table{Head: loadgenHead, Left: map[int]bool{0: true, 1: true, 2: true, 3: true}}
	for i, run := range lr.Runs {
		if i > 0 {
			t.Rows = append(t.Rows, nil)
		}
		for _, res := range run.Results {
			t.Rows = append(t.Rows, loadgenRow(run, res))
		}
	}
	t.Write(b, "")
	b.WriteString("(gen wait %: the share of the time the generator waited for the tunnel; near 100, the tunnel set the pace;\n" +
		"on/off: Gbit/s over the same engine's with --queue-management off)\n\n")
	writeLoadgenRatios(b, lr)
	for _, w := range lr.Warnings {
		fmt.Fprintf(b, "warning: %s\n", w)
	}
}

// writeLoadgenSealing prints the pre-sealed ring's memory and how long
// sealing it took before each tunnel's inbound cell.
func writeLoadgenSealing(b *strings.Builder, lr *Report) {
	var took []string
	for _, r := range lr.Runs {
		for _, res := range r.Results {
			if res.SealSeconds > 0 {
				took = append(took, fmt.Sprintf("%.2f s (%s)", res.SealSeconds, r.kind()))
			}
		}
	}
	if len(took) == 0 {
		return
	}
	fmt.Fprintf(b, "Pre-sealed ring: %d datagrams, %.2f GiB, mapped in %.2f s", lr.RingPackets, float64(lr.RingBytes)/(1<<30), lr.RingMapSeconds)
	if lr.PeakRSSBytes > 0 {
		fmt.Fprintf(b, " (harness peak RSS %.2f GiB)", float64(lr.PeakRSSBytes)/(1<<30))
	}
	fmt.Fprintf(b, "; sealing it before each inbound cell, outside every figure, took %s.\n", strings.Join(took, ", "))
}

// writeLoadgenRatios prints the ratio table in its fixed form: pipeline
// over sequential and over wireguard-go, inbound and outbound, then each
// engine over itself with queue management off when that was measured;
// "-" where a figure is missing.
func writeLoadgenRatios(b *strings.Builder, lr *Report) {
	cellOf := func(engine string, f func(Result) float64, d core.Direction) string {
		for _, r := range lr.Runs {
			if r.Impl == core.ImplPipeGuard && r.Engine == engine && !r.Unmanaged {
				for _, res := range r.Results {
					if res.Direction == d && f(res) > 0 {
						return fmt.Sprintf("%.2f", f(res))
					}
				}
			}
		}
		return "-"
	}
	fmt.Fprintf(b, "%-23s  %9s  %8s\n", "loadgen ratio", "inbound", "outbound")
	for _, row := range []struct {
		name string
		f    func(Result) float64
	}{
		{"pipeline / sequential", func(r Result) float64 { return r.VsSequential }},
		{"pipeline / wireguard-go", func(r Result) float64 { return r.VsWireguardGo }},
	} {
		fmt.Fprintf(b, "%-23s  %9s  %8s\n", row.name, cellOf("pipeline", row.f, core.Inbound), cellOf("pipeline", row.f, core.Outbound))
	}
	onOff := func(r Result) float64 { return r.VsManagementOff }
	for _, engine := range []string{"pipeline", engineSequential} {
		in, out := cellOf(engine, onOff, core.Inbound), cellOf(engine, onOff, core.Outbound)
		if in != "-" || out != "-" {
			fmt.Fprintf(b, "%-23s  %9s  %8s\n", engine+" on/off", in, out)
		}
	}
}

// AddChart adds to c a row of panels (at row) for the loadgen mode: for
// each direction, delivered Gbit/s against the tunnel's CPU in cores, a
// point per tunnel; m and st say where and how it was measured.
func (lr *Report) AddChart(c svg.Chart, m core.Machine, st core.Settings, row int) svg.Chart {
	c.Subtitles = append(c.Subtitles, fmt.Sprintf("loadgen: %s, %d cores, %s; TUN MTU %d, %d-byte packets; %.0f s, medians of %d; load average %s; wireguard-go %s",
		m.CPUModel, m.Cores, m.Date, lr.MTU, lr.InnerPacketBytes, lr.Seconds, st.Repeat,
		cmp.Or(m.LoadAverage, "unknown"), lr.WireguardGoVersion))
	for _, d := range loadDirections {
		p := svg.Panel{Title: fmt.Sprintf("%s, one end under load", d), XLabel: "tunnel CPU (cores)", YLabel: "delivered Gbit/s", Row: row}
		for _, run := range lr.Runs {
			s := core.KindSeries(run.kind())
			for _, res := range run.Results {
				if res.Direction == d {
					s.Points = append(s.Points, svg.Point{X: res.TunnelCPUPercent / 100, Y: res.Gbps})
				}
			}
			p.Add(s)
		}
		p.XStep, p.XRange = cpuAxis(p)
		c.Panels = append(c.Panels, p)
	}
	return c
}

// cpuAxis is an x axis for CPU in cores, which need not be whole: ticks
// at a nice step, and ends on ticks around the points.
func cpuAxis(p svg.Panel) (step float64, xr [2]float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			lo, hi = min(lo, pt.X), max(hi, pt.X)
		}
	}
	if lo > hi {
		return 0, xr
	}
	_, step = svg.NiceScale(max(hi-lo, 0.2))
	xr = [2]float64{math.Floor(lo/step) * step, math.Ceil(hi/step) * step}
	if xr[1] <= xr[0] {
		xr[1] = xr[0] + step
	}
	return step, xr
}

// tunDelivered is the number of inner packets a TUN interface's receive
// counters say the tunnel wrote, all of them loadInnerSize-byte IPv4 UDP
// packets: a tunnel may coalesce a run of them into one UDP GRO packet
// (wireguard-go's TUN offload does), which the interface counts once with
// one set of headers, so packets = (bytes - headers*writes) / payload.
func tunDelivered(bytes, writes uint64) uint64 {
	if bytes < loadHeaderSize*writes {
		return 0
	}
	return (bytes - loadHeaderSize*writes) / loadPayloadSize
}
