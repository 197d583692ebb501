package netns

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/stages"
)

// Config is one run of the netns mode. The zero value runs it with
// the defaults named in the comments, which Quick makes shorter.
type Config struct {
	Quick bool
	// Duration is each iperf3 run's -t, in whole seconds (rounded up):
	// default 10 s, quick 2 s.
	Duration time.Duration
	Repeat   int             // figures are medians of this many repeats; default 1
	Engines  []stages.Engine // PipeGuard's, each measured beside wireguard-go; default both
	// Streams are iperf3's parallel TCP streams (-P), each count run in
	// both directions; default 1 and 4. The latency-under-load table
	// loads the tunnel with the most.
	Streams []int
	// Managed and Unmanaged say which PipeGuard tunnels to measure: with
	// queue management on, off (--queue-management off), or, both true,
	// each engine both ways, so that what it costs and buys is measured
	// in one run. Both false means both.
	Managed, Unmanaged bool
	// CongestionControl is the TCP congestion control iperf3's streams
	// use, set in both namespaces; default cubic, Linux's default. It
	// decides what a queue's drops do: CUBIC halves its window, BBR
	// mostly does not, and keeps its queue.
	CongestionControl string
	Out               core.Out // progress
}

// DefaultCongestionControl is Config.CongestionControl's default.
const DefaultCongestionControl = "cubic"

// The iperf3 runs: long enough for TCP to settle (it does in well under a
// second on a veth), short enough that the quick form, 3 tunnels × 4
// runs, stays under a minute.
const (
	defaultTCPDuration = 10 * time.Second
	quickTCPDuration   = 2 * time.Second
)

// MaxStreams is iperf3's own limit of parallel streams.
const MaxStreams = 128

// WithDefaults fills c's zero fields and rounds its duration up to
// whole seconds, as iperf3 -t takes them.
func (c Config) WithDefaults() Config {
	if c.Duration == 0 {
		c.Duration = defaultTCPDuration
		if c.Quick {
			c.Duration = quickTCPDuration
		}
	}
	c.Duration = max(time.Second, (c.Duration + time.Second - 1).Truncate(time.Second))
	c.Repeat = max(c.Repeat, 1)
	if len(c.Engines) == 0 {
		c.Engines = []stages.Engine{stages.EngineSequential, stages.EnginePipeline}
	}
	if len(c.Streams) == 0 {
		c.Streams = []int{1, 4}
	}
	if !c.Managed && !c.Unmanaged {
		c.Managed, c.Unmanaged = true, true
	}
	c.CongestionControl = cmp.Or(c.CongestionControl, DefaultCongestionControl)
	return c
}

// kinds lists the tunnels to measure, in order.
func (c Config) kinds() []core.Kind { return core.KindsManaged(c.Engines, c.Managed, c.Unmanaged) }

// latencyStreams is the streams each way of the latency table's loads:
// the most of the TCP runs.
func (c Config) latencyStreams() int { return slices.Max(c.Streams) }

// Ping settings: one echo request every 10 ms (the iputils minimum for
// users other than root is 2 ms), and idle series of 5 s, quick 1 s.
const (
	pingInterval   = 10 * time.Millisecond
	pingIdleCount  = 500
	pingQuickCount = 100
)

// tcpCase is one iperf3 configuration.
type tcpCase struct {
	Direction core.Direction // Outbound, or Inbound (iperf3 -R)
	Streams   int
}

func (c tcpCase) String() string {
	return fmt.Sprintf("TCP %s, %d stream%s", c.Direction, c.Streams, core.Plural(c.Streams))
}

// tcpCases lists the iperf3 runs in the order they run: for each stream
// count, outbound then inbound.
func (c Config) tcpCases() []tcpCase {
	var out []tcpCase
	for _, n := range c.Streams {
		out = append(out, tcpCase{core.Outbound, n}, tcpCase{core.Inbound, n})
	}
	return out
}

// loadedCase is the run the loaded ping series goes with: outbound, the
// most streams.
func loadedCase(cases []tcpCase) tcpCase {
	return tcpCase{core.Outbound, slices.MaxFunc(cases, func(a, b tcpCase) int { return a.Streams - b.Streams }).Streams}
}

// pingIdleCount is the idle series' length.
func (c Config) pingIdleCount() int {
	if c.Quick {
		return pingQuickCount
	}
	return pingIdleCount
}

// netnsSample is what one repeat measured of one tunnel.
type netnsSample struct {
	TCP          []TCPSample // in the order of the cases
	Idle, Loaded nsenv.PingResult
	Latency      [numLatencyLoads]latSample // by row of the latency table
	PeakRSS      uint64
}

// summarizeNetns turns the samples of each kind (samples[i] are kinds[i]'s
// repeats) into runs: medians over the repeats, ping series pooled, the
// largest RSS; then the ratios.
func summarizeNetns(kinds []core.Kind, args [][]string, cases []tcpCase, samples [][]netnsSample, latencyStreams int) []Run {
	runs := make([]Run, len(kinds))
	for i, k := range kinds {
		r := Run{Impl: k.Impl, Engine: k.Engine, Unmanaged: k.Unmanaged, Args: args[i],
			Latency: summarizeLatency(latencyStreams, samples[i])}
		var idle, loaded nsenv.PingResult
		var cpu, wall float64
		for _, s := range samples[i] {
			idle = poolPing(idle, s.Idle)
			loaded = poolPing(loaded, s.Loaded)
			r.PeakRSSBytes = max(r.PeakRSSBytes, s.PeakRSS)
			for _, ts := range s.TCP {
				cpu += ts.CPUSeconds
				wall += ts.WallSeconds
			}
		}
		r.PingIdle, r.PingLoaded = idle.RTT(), loaded.RTT()
		r.CPUPercent = 100 * core.Ratio(cpu, wall)
		for ci, c := range cases {
			tr := TCPResult{Direction: c.Direction, Streams: c.Streams}
			for _, s := range samples[i] {
				tr.Samples = append(tr.Samples, s.TCP[ci])
			}
			tr.Gbps = medianTCP(tr.Samples, func(s TCPSample) float64 { return s.Gbps })
			tr.Retransmits = int64(medianTCP(tr.Samples, func(s TCPSample) float64 { return float64(s.Retransmits) }))
			tr.CPUPercent = medianTCP(tr.Samples, func(s TCPSample) float64 { return 100 * core.Ratio(s.CPUSeconds, s.WallSeconds) })
			r.TCP = append(r.TCP, tr)
		}
		runs[i] = r
	}
	fillNetnsRatios(runs)
	return runs
}

// poolPing adds b's replies to a's.
func poolPing(a, b nsenv.PingResult) nsenv.PingResult {
	return nsenv.PingResult{Sent: a.Sent + b.Sent, Received: a.Received + b.Received, RTTs: append(a.RTTs, b.RTTs...)}
}

func medianTCP(samples []TCPSample, f func(TCPSample) float64) float64 {
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = f(s)
	}
	return core.Median(xs)
}

// fillNetnsRatios sets each PipeGuard TCP result's ratio to wireguard-go's
// in the same direction and stream count, and each pipeline result's to
// the sequential engine's with queue management alike.
func fillNetnsRatios(runs []Run) {
	find := func(impl, engine string, unmanaged bool, c tcpCase) float64 {
		for _, r := range runs {
			if r.Impl != impl || r.Engine != engine || r.Unmanaged != unmanaged {
				continue
			}
			for _, t := range r.TCP {
				if t.Direction == c.Direction && t.Streams == c.Streams {
					return t.Gbps
				}
			}
		}
		return 0
	}
	for i := range runs {
		r := &runs[i]
		for j := range r.TCP {
			t := &r.TCP[j]
			c := tcpCase{t.Direction, t.Streams}
			t.VsWireguardGo, t.VsSequential = 0, 0
			if r.Impl == core.ImplPipeGuard {
				t.VsWireguardGo = core.Ratio(t.Gbps, find(core.ImplWireguardGo, "", false, c))
				if r.Engine != engineSequential {
					t.VsSequential = core.Ratio(t.Gbps, find(core.ImplPipeGuard, engineSequential, r.Unmanaged, c))
				}
			}
		}
	}
}

// engineSequential names the baseline engine in the ratios.
const engineSequential = string(stages.EngineSequential)
