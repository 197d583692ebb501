package soak

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

// Soak settings.
const (
	// soakSampleEvery is how often RSS, goroutines and the drop counters
	// are read.
	soakSampleEvery = 10 * time.Second
	// soakWarmup is traffic before the first sample. The queues between
	// stages are allocated at start but their pages are touched only when
	// traffic first fills them, and TCP takes a moment to reach its
	// window: a first sample taken idle would count that as growth. The
	// soak compares steady state with steady state.
	soakWarmup = 5 * time.Second
	// DefaultDuration, QuickDuration: the traffic's length after the
	// warm-up.
	DefaultDuration = 10 * time.Minute
	QuickDuration   = 20 * time.Second
	// DefaultEvery: a SIGHUP reload and a wg set change at each end
	// this often.
	DefaultEvery = time.Minute
	// soakPingInterval: ping's -i through the tunnel, the whole time.
	soakPingInterval = 200 * time.Millisecond
	// soakChangeWait bounds how long a change may take to show in wg show.
	soakChangeWait = 5 * time.Second
)

// Config is one soak. The zero value runs it with the defaults named
// in the comments, which Quick makes shorter.
type Config struct {
	Quick bool
	// Duration is the traffic watched after the warm-up: default 10 min,
	// quick 20 s.
	Duration time.Duration
	// Every is how often each end is reloaded with SIGHUP and its peer
	// changed with wg set: default 1 min (at least once in a shorter
	// soak).
	Every time.Duration
	Out   core.Out // progress
}

// WithDefaults fills c's zero fields.
func (c Config) WithDefaults() Config {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
		if c.Quick {
			c.Duration = QuickDuration
		}
	}
	c.Every = cmp.Or(c.Every, DefaultEvery)
	return c
}

// The soak's bounds: over the run, each tunnel's resident set
// may grow by at most 10% plus 2 MiB, its goroutines by at most 5, and no
// packet may be lost to a stage's panic.
const (
	soakRSSFactor     = 1.1
	soakRSSSlack      = 2 << 20
	soakGoroutineRise = 5
)

// Report is what the soak mode measured.
type Report struct {
	// DurationSeconds is the traffic measured (after WarmupSeconds of
	// traffic before the first sample); samples every SampleEverySeconds,
	// a SIGHUP reload and a wg set change at each end every
	// ChangeEverySeconds.
	DurationSeconds    float64 `json:"duration_seconds"`
	WarmupSeconds      float64 `json:"warmup_seconds"`
	SampleEverySeconds float64 `json:"sample_every_seconds"`
	ChangeEverySeconds float64 `json:"change_every_seconds"`
	MTU                int     `json:"mtu"`
	// Args are the tunnel program's arguments at end A (B's differ only
	// in config file and interface name); Env what it gets besides.
	Args              []string `json:"args"`
	Env               []string `json:"env"`
	PipeGuardRevision string   `json:"pipeguard_revision,omitempty"`
	Iperf3Version     string   `json:"iperf3_version"`
	// Ends names the tunnel processes, in the order of each sample's Ends.
	Ends    []string `json:"ends"`
	Samples []Sample `json:"samples"`
	Events  []Event  `json:"events"`
	// TCP is iperf3 --bidir from A to B over the whole run, warm-up
	// included; Ping is ping -i 0.2 from A to B over the same time.
	TCP  TCP      `json:"tcp"`
	Ping core.RTT `json:"ping"`
	// Summary is the soak's figures, as its one line says them.
	Summary Summary `json:"summary"`
	// Line is the one-line summary the table ends with.
	Line string `json:"line"`
	// Failures are the bounds broken and the changes that did not apply;
	// none means the soak held.
	Failures []string `json:"failures,omitempty"`
	// Warnings are things that went wrong without spoiling a figure.
	Warnings []string `json:"warnings,omitempty"`
}

// Sample is one reading of every tunnel process.
type Sample struct {
	AtSeconds float64   `json:"at_seconds"` // since the first sample
	Ends      []EndStat `json:"ends"`       // in the order of Report.Ends
}

// EndStat is one tunnel process at one moment: its resident set
// (VmRSS in /proc/<pid>/status) and what its metrics endpoint says.
type EndStat struct {
	RSSBytes      uint64 `json:"rss_bytes"`
	Goroutines    int    `json:"goroutines"`     // go_goroutines
	PanicDrops    uint64 `json:"panic_drops"`    // pipeguard_stage_drops_total{reason="panic"}, all stages
	StageRestarts uint64 `json:"stage_restarts"` // pipeguard_stage_restarts_total, all stages
	// RxBytes and TxBytes are the datagram bytes from and to its peers
	// (pipeguard_peer_{receive,transmit}_bytes_total), so far.
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
	// HeapBytes is the Go heap's objects, live and garbage not yet swept
	// (go_memstats_heap_alloc_bytes); HeapGoalBytes where the next GC
	// cycle ends (go_memstats_next_gc_bytes); GCCycles the cycles so far
	// (go_gc_cycles_total). Resident memory that grows with HeapBytes
	// while GCCycles stands still is garbage awaiting a cycle, not a leak.
	HeapBytes     uint64 `json:"heap_bytes"`
	HeapGoalBytes uint64 `json:"heap_goal_bytes"`
	GCCycles      uint64 `json:"gc_cycles"`
}

// Event is one change made to a running tunnel.
type Event struct {
	AtSeconds float64 `json:"at_seconds"` // since the first sample
	End       string  `json:"end"`
	Kind      string  `json:"kind"` // soakReload or soakWGSet
	What      string  `json:"what"`
	// Applied says the change showed in wg show within soakChangeWait;
	// Error says what went wrong otherwise.
	Applied bool   `json:"applied"`
	Error   string `json:"error,omitempty"`
}

// Kinds of Event.
const (
	soakReload = "SIGHUP"
	soakWGSet  = "wg set"
)

// TCP is the bidirectional iperf3 run: bytes received each way.
type TCP struct {
	Seconds     float64 `json:"seconds"`
	BytesAToB   uint64  `json:"bytes_a_to_b"`
	BytesBToA   uint64  `json:"bytes_b_to_a"`
	Retransmits int64   `json:"retransmits"`
}

// Summary holds the figures of the one line: the first and last
// samples of both processes summed, and the counts over the run.
type Summary struct {
	RSSFirstBytes   uint64 `json:"rss_first_bytes"`
	RSSLastBytes    uint64 `json:"rss_last_bytes"`
	GoroutinesFirst int    `json:"goroutines_first"`
	GoroutinesLast  int    `json:"goroutines_last"`
	PanicDrops      uint64 `json:"panic_drops"`
	StageRestarts   uint64 `json:"stage_restarts"`
	Reloads         int    `json:"reloads"`
	ReloadsApplied  int    `json:"reloads_applied"`
	WGSets          int    `json:"wg_sets"`
	WGSetsApplied   int    `json:"wg_sets_applied"`
	Held            bool   `json:"held"` // no failures
}

// soakPlan is when the soak samples and changes the tunnels, as offsets
// from the first sample.
type soakPlan struct {
	samples, changes []time.Duration
}

// planSoak samples at 0, every soakSampleEvery, and at d; and changes the
// tunnels every `every`, half an interval off the sample grid of whole
// intervals (at every/2, 3·every/2, …), so that the last sample comes a
// while after the last change and sees what it left. A run shorter than
// every/2 still gets one round of changes, at d/2.
func planSoak(d, every time.Duration) soakPlan {
	var p soakPlan
	for t := time.Duration(0); t < d; t += soakSampleEvery {
		p.samples = append(p.samples, t)
	}
	p.samples = append(p.samples, d)
	for t := every / 2; t < d; t += every {
		p.changes = append(p.changes, t)
	}
	if len(p.changes) == 0 {
		p.changes = []time.Duration{d / 2}
	}
	return p
}

// summarizeSoak fills the summary, the failures and the line from the
// samples and events.
func (r *Report) summarizeSoak() {
	s := Summary{}
	for _, e := range r.Events {
		switch e.Kind {
		case soakReload:
			s.Reloads++
			if e.Applied {
				s.ReloadsApplied++
			}
		case soakWGSet:
			s.WGSets++
			if e.Applied {
				s.WGSetsApplied++
			}
		}
		if !e.Applied {
			r.Failures = append(r.Failures, fmt.Sprintf("%s at %s, %.1f s: %s did not apply: %s", e.Kind, e.End, e.AtSeconds, e.What, e.Error))
		}
	}
	if n := len(r.Samples); n > 0 {
		first, last := r.Samples[0], r.Samples[n-1]
		for i, end := range r.Ends {
			if i >= len(first.Ends) || i >= len(last.Ends) {
				break
			}
			f, l := first.Ends[i], last.Ends[i]
			s.RSSFirstBytes += f.RSSBytes
			s.RSSLastBytes += l.RSSBytes
			s.GoroutinesFirst += f.Goroutines
			s.GoroutinesLast += l.Goroutines
			s.PanicDrops += l.PanicDrops
			s.StageRestarts += l.StageRestarts
			r.checkBounds(end, f, l)
		}
		r.checkBounds("both", EndStat{RSSBytes: s.RSSFirstBytes, Goroutines: s.GoroutinesFirst},
			EndStat{RSSBytes: s.RSSLastBytes, Goroutines: s.GoroutinesLast})
	} else {
		r.Failures = append(r.Failures, "no samples")
	}
	s.Held = len(r.Failures) == 0
	r.Summary = s
	r.Line = r.line()
}

// checkBounds notes the bounds that end broke between its first
// and last samples: RSS and goroutine growth, and panic drops at all.
func (r *Report) checkBounds(end string, first, last EndStat) {
	if limit := soakRSSFactor*float64(first.RSSBytes) + soakRSSSlack; float64(last.RSSBytes) > limit {
		r.Failures = append(r.Failures, fmt.Sprintf("%s: RSS grew from %.1f MiB to %.1f MiB, over %.1f MiB (first × %.1f + %d MiB)",
			end, mib(first.RSSBytes), mib(last.RSSBytes), limit/(1<<20), soakRSSFactor, soakRSSSlack>>20))
	}
	if last.Goroutines > first.Goroutines+soakGoroutineRise {
		r.Failures = append(r.Failures, fmt.Sprintf("%s: goroutines rose from %d to %d, over first + %d",
			end, first.Goroutines, last.Goroutines, soakGoroutineRise))
	}
	if last.PanicDrops > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%s: %d packets lost to stage panics", end, last.PanicDrops))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// line is the soak's one-line summary, in this form:
//
//	soak: <D> of traffic; RSS first X MiB last Y MiB; goroutines first A last B; panic drops N; <other figures>
//
// RSS and goroutines are both tunnel processes' together.
func (r *Report) line() string {
	s := r.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %s of traffic; RSS first %.1f MiB last %.1f MiB; goroutines first %d last %d; panic drops %d",
		fmtSoakDuration(time.Duration(r.DurationSeconds*float64(time.Second))), mib(s.RSSFirstBytes), mib(s.RSSLastBytes),
		s.GoroutinesFirst, s.GoroutinesLast, s.PanicDrops)
	fmt.Fprintf(&b, "; both tunnel processes summed; TCP %.2f GB moved (A→B %.2f, B→A %.2f)",
		float64(r.TCP.BytesAToB+r.TCP.BytesBToA)/1e9, float64(r.TCP.BytesAToB)/1e9, float64(r.TCP.BytesBToA)/1e9)
	lost := 0.0
	if r.Ping.Sent > 0 {
		lost = 100 * float64(r.Ping.Sent-r.Ping.Received) / float64(r.Ping.Sent)
	}
	fmt.Fprintf(&b, "; ping %d of %d answered (%.1f%% lost)", r.Ping.Received, r.Ping.Sent, lost)
	fmt.Fprintf(&b, "; SIGHUP reloads %d of %d; wg set changes %d of %d; stage restarts %d",
		s.ReloadsApplied, s.Reloads, s.WGSetsApplied, s.WGSets, s.StageRestarts)
	if s.Held {
		b.WriteString("; bounds held")
	} else {
		fmt.Fprintf(&b, "; FAILED (%d)", len(r.Failures))
	}
	return b.String()
}

// fmtSoakDuration prints d as a user would type it: 60s, 90s, 10m, 1h30m.
func fmtSoakDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 2*time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	s := d.String() // 10m0s, 1h30m0s, 1h0m0s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// soakMetrics is what the harness reads from a tunnel's metrics
// endpoint.
type soakMetrics struct {
	goroutines               int
	panicDrops, restarts     uint64
	rxBytes, txBytes         uint64
	heap, heapGoal, gcCycles uint64
	sawGoroutines, sawDrops  bool
}

// parseSoakMetrics reads the Prometheus text exposition of
// cmd/headless-client/metrics: go_goroutines and the heap and GC figures,
// and sums over stages of the panic drops and restarts, and over peers of
// the bytes. go_goroutines and the drop counters must be there.
func parseSoakMetrics(text string) (soakMetrics, error) {
	var m soakMetrics
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			return m, fmt.Errorf("%w: metrics line %q", core.ErrNetns, line)
		}
		name, labels, _ := strings.Cut(series, "{")
		var target *uint64
		switch name {
		case "go_goroutines":
			v, err := strconv.Atoi(value)
			if err != nil || v < 0 {
				return m, fmt.Errorf("%w: metrics line %q", core.ErrNetns, line)
			}
			m.goroutines, m.sawGoroutines = v, true
			continue
		case "pipeguard_stage_drops_total":
			m.sawDrops = true
			if !strings.Contains(labels, `reason="panic"`) {
				continue
			}
			target = &m.panicDrops
		case "pipeguard_stage_restarts_total":
			target = &m.restarts
		case "pipeguard_peer_receive_bytes_total":
			target = &m.rxBytes
		case "pipeguard_peer_transmit_bytes_total":
			target = &m.txBytes
		case "go_memstats_heap_alloc_bytes":
			target = &m.heap
		case "go_memstats_next_gc_bytes":
			target = &m.heapGoal
		case "go_gc_cycles_total":
			target = &m.gcCycles
		default:
			continue
		}
		v, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return m, fmt.Errorf("%w: metrics line %q", core.ErrNetns, line)
		}
		*target += v
	}
	if !m.sawGoroutines || !m.sawDrops {
		return m, fmt.Errorf("%w: metrics without go_goroutines or pipeguard_stage_drops_total", core.ErrNetns)
	}
	return m, sc.Err()
}

// iperf3BidirJSON is the part of `iperf3 --bidir -J` the soak reads: the
// forward direction (client to server) in sum_sent and sum_received, the
// reverse one in the _bidir_reverse sums.
type iperf3BidirJSON struct {
	End struct {
		SumSent            nsenv.Iperf3Sum `json:"sum_sent"`
		SumReceived        nsenv.Iperf3Sum `json:"sum_received"`
		SumSentReverse     nsenv.Iperf3Sum `json:"sum_sent_bidir_reverse"`
		SumReceivedReverse nsenv.Iperf3Sum `json:"sum_received_bidir_reverse"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf3Bidir reads `iperf3 -c … --bidir -J` run from A: bytes
// received by B (forward) and by A (reverse).
func parseIperf3Bidir(b []byte) (TCP, error) {
	var j iperf3BidirJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return TCP{}, fmt.Errorf("%w: %v", nsenv.ErrIperf, err)
	}
	if j.Error != "" {
		return TCP{}, fmt.Errorf("%w: iperf3: %s", nsenv.ErrIperf, j.Error)
	}
	e := j.End
	t := TCP{Seconds: e.SumReceived.Seconds, BytesAToB: e.SumReceived.Bytes, BytesBToA: e.SumReceivedReverse.Bytes,
		Retransmits: e.SumSent.Retransmits + e.SumSentReverse.Retransmits}
	if !(t.Seconds > 0) || math.IsInf(t.Seconds, 0) || t.BytesAToB == 0 || t.BytesBToA == 0 {
		return TCP{}, fmt.Errorf("%w: --bidir run moved nothing one way (%d and %d bytes)", nsenv.ErrIperf, t.BytesAToB, t.BytesBToA)
	}
	return t, nil
}
