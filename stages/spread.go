package stages

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"pipeguard/stages/cpustat"
)

// The spread decision. The pools spread a large batch over the cores, and
// that costs CPU the inline path does not spend: each batch's cache lines
// move to a worker's core and on to the collector's, and each hand-off may
// wake a thread. Measured on two vCPUs shared by both tunnel ends and
// iperf3, a tunnel whose batches all go inline spends what the sequential
// engine spends per byte, and one whose large batches take the pools about
// a fifth more. With an idle core the pools win: the work of one batch
// runs on two. With none, the extra CPU is taken from the tunnel's own
// throughput and from everything else on the machine.
//
// So the pipeline watches the machine. A supervised actor (spreader) reads
// the CPU pressure (Linux PSI: the share of the time some task waited for
// a CPU) and the packets delivered every spreadPeriod. It starts with the
// pools. When tasks wait while traffic flows, it measures: one period with
// every batch inline, one with the pools, one inline again, and it keeps
// the pools only if they delivered spreadGain times the mean of the inline
// periods; otherwise every batch goes inline (the small ones always do:
// inline.go). A verdict holds for a hold time of traffic (idle time does
// not count) that doubles, up to spreadHoldMax, while the trials agree,
// so a steady load costs a trial every few seconds of traffic; a trial
// that disagrees with the last brings the hold back to spreadHoldMin.
// When a hold is over, the verdict is tried again.
//
// Order is never at stake: a change of mode only changes which batches the
// edge stages may take inline, and they go inline only into an empty
// pipeline.

// Settings of the spread decision.
const (
	// spreadPeriod is how long each measurement runs: at the rates that
	// matter (over spreadMinRate) it sees thousands of packets, and a
	// probe of one period costs little. 200 ms rather than 100: in a
	// loadgen run the rates of 100 ms periods wandered by a fifth, more
	// than the gain the pools bring there, and trials landed either way.
	spreadPeriod = 200 * time.Millisecond
	// spreadPressure is the share of the time some task may wait for a
	// CPU before spreading is put to the test: on an uncontended machine
	// the pools cannot take CPU anyone else needs.
	spreadPressure = 0.2
	// spreadGain is how many times the packets of the inline periods a
	// trial of the pools must deliver to be kept: they cost about a fifth
	// more CPU a packet, so a gain smaller than a tenth or so is noise
	// (a TCP flow's rate wanders by that much between periods) or a loss
	// elsewhere. 1.15 with 200 ms periods, rather than 1.25 with 100 ms:
	// with one end under load (cmd/bench --mode loadgen --quick --repeat
	// 3) the pools gain about 1.2 inbound and 1.45 outbound, and the
	// pipeline / sequential ratios went from 1.02/0.96 and 1.23/1.45 to
	// 1.14/1.61 and 1.30/1.51; with both ends on two cores (--mode netns,
	// four runs each, interleaved) the mean of the cells stayed at 0.98.
	spreadGain = 1.15
	// spreadMinRate (packets delivered a second, both directions) is the least
	// traffic worth measuring: below it, the choice makes no difference
	// that matters, and the pools stay.
	spreadMinRate = 20000
	// spreadHoldMin and spreadHoldMax bound how long a choice holds before
	// it is checked again (1 s and 16 s of traffic): in periods, so that
	// a trial's share of the time stays what it was with shorter ones.
	spreadHoldMin = 5 * spreadPeriod
	spreadHoldMax = 80 * spreadPeriod
)

// inlineAll is the inline path's limit in inline mode: any batch (none is
// larger than maxBatch) goes inline when the pipeline is empty.
const inlineAll = maxBatch

// spreadMode is what the spreader does in the period being measured.
type spreadMode int

const (
	modeSpread spreadMode = iota // large batches take the pools
	modeProbe                    // every batch inline, to measure the inline rate
	modeTrial                    // large batches take the pools, to compare
	modeCheck                    // every batch inline again, to measure it after the trial
	modeInline                   // every batch inline
)

func (m spreadMode) String() string {
	return [...]string{"spread", "probe", "trial", "check", "inline"}[m]
}

// inline says whether the mode takes every batch inline.
func (m spreadMode) inline() bool { return m == modeProbe || m == modeCheck || m == modeInline }

// spreadSample is one period's measurement.
type spreadSample struct {
	pressure float64       // share of the period some task waited for a CPU
	rate     float64       // packets a second delivered (TUN writes and datagrams sent)
	elapsed  time.Duration // the period's length
}

// spreadState is the decision's state; its zero value spreads and checks
// at once. A trial of the pools is a period between two inline periods,
// and it is compared with their mean: a rate that rises or falls through
// the three (a TCP flow starting up) then favours neither.
type spreadState struct {
	mode   spreadMode
	before float64       // packets a second of the inline period before the trial
	trial  float64       // packets a second of the trial
	hold   time.Duration // how long the next choice holds; 0 means spreadHoldMin
	left   time.Duration // how long the present choice still holds
	pools  bool          // the last trial's verdict: the pools paid
	tried  bool          // there was a trial
}

// step takes the measurement of the period just ended and returns the mode
// of the next.
func (s *spreadState) step(x spreadSample) spreadMode {
	if s.hold == 0 {
		s.hold = spreadHoldMin
	}
	busy := x.rate >= spreadMinRate // too little traffic to tell, or to matter
	switch s.mode {
	case modeSpread:
		switch {
		case !busy:
			// Idle: nothing to decide, and the hold waits for traffic.
		case s.left > 0:
			s.left -= x.elapsed
		case x.pressure >= spreadPressure:
			s.mode = modeProbe
		}
	case modeProbe:
		s.inlineMeasured(x.rate)
	case modeTrial:
		s.trial, s.mode = x.rate, modeCheck
	case modeCheck:
		pools := s.trial >= spreadGain*(s.before+x.rate)/2
		if s.tried && pools != s.pools {
			s.hold = spreadHoldMin // the machine changed: watch it closely again
		}
		s.pools, s.tried = pools, true
		s.mode = modeInline
		if pools {
			s.mode = modeSpread
		}
		s.holdOn()
	case modeInline:
		switch {
		case !busy:
			// Idle: the mode makes no difference now, and the verdict
			// and its hold stand for the next burst (the bursts of one
			// load are alike: a benchmark's cells, a transfer's chunks).
		case s.left > 0:
			s.left -= x.elapsed
		default:
			s.inlineMeasured(x.rate) // the hold is over: try the pools again
		}
	}
	return s.mode
}

// inlineMeasured takes the rate of an inline period that starts a trial:
// on to the trial, or, with too little traffic to tell (the load went
// away during the probe), back to the pools for a hold.
func (s *spreadState) inlineMeasured(rate float64) {
	s.before = rate
	if rate < spreadMinRate {
		s.mode = modeSpread
		s.holdOn()
		return
	}
	s.mode = modeTrial
}

// holdOn makes the choice just made hold for the hold time, and doubles
// the hold time for the next, up to spreadHoldMax.
func (s *spreadState) holdOn() {
	s.left = s.hold
	s.hold = min(2*s.hold, spreadHoldMax)
}

// pressureReader is cpustat.Reader as the spreader uses it.
type pressureReader interface {
	Read() (cpustat.Pressure, error)
	Close() error
}

// openPressure is cpustat.Open as the spreader wants it.
func openPressure() (pressureReader, error) {
	r, err := cpustat.Open()
	if err != nil {
		return nil, err
	}
	return r, nil
}

// spreader is the supervised actor that runs the spread decision for a
// pipeline tunnel: it moves the inline path's limit between
// defaultInlineMax (spread) and inlineAll. It reads the published packet
// counters of the stages that deliver (tunwrite, udpsend) and the CPU
// pressure; where the pressure cannot be read, it leaves the limit alone
// (large batches always spread).
type spreader struct {
	t       *Tunnel
	open    func() (pressureReader, error) // cpustat.Open; tests pass a fake
	packets func() uint64                  // packets delivered so far, both directions
	procs   func() int                     // runtime.GOMAXPROCS(0) if nil; tests pass a fake
	log     *slog.Logger

	spread int // the limit while large batches spread: the one it started with
}

// oneP reports whether the Go runtime runs one goroutine at a time (one
// P). The pools then cannot run a batch's steps in parallel with the next
// batch's, only add hand-offs: measured in memory with GOMAXPROCS=1, the
// pipeline with its pools delivered 0.88 to 0.94 times the sequential
// engine's rate. So on one P every batch goes inline, whatever the
// pressure. GOMAXPROCS may change while the tunnel runs (the runtime
// follows the CPU limit of a cgroup), so this is asked every period.
func (s *spreader) oneP() bool {
	if s.procs != nil {
		return s.procs() < 2
	}
	return runtime.GOMAXPROCS(0) < 2
}

// setInline moves the inline path's limit: every batch (inline) or only
// small ones, the rest spread over the pools (the limit the tunnel
// started with, defaultInlineMax).
func (s *spreader) setInline(inline bool) {
	if inline {
		s.t.inline.max.Store(inlineAll)
	} else {
		s.t.inline.max.Store(int64(s.spread))
	}
}

// withoutPressure is the spreader where the CPU pressure cannot be read:
// large batches take the pools, except on one P.
func (s *spreader) withoutPressure(done <-chan struct{}) error {
	tick := time.NewTicker(spreadPeriod)
	defer tick.Stop()
	for {
		s.setInline(s.oneP())
		select {
		case <-done:
			return nil
		case <-tick.C:
		}
	}
}

func (s *spreader) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	if s.t.inline.fixed {
		<-done
		return nil
	}
	if s.spread == 0 { // the first start; a restart keeps it
		s.spread = s.t.inline.limit()
	}
	r, err := s.open()
	if err != nil {
		s.log.Debug("no CPU pressure reading: large batches take the pools (on more than one P)", "err", err)
		return s.withoutPressure(done)
	}
	defer r.Close()
	p0, err := r.Read()
	if err != nil {
		s.log.Warn("CPU pressure unreadable: large batches take the pools (on more than one P)", "err", err)
		return s.withoutPressure(done)
	}
	tick := time.NewTicker(spreadPeriod)
	defer tick.Stop()
	var st spreadState
	s.setInline(s.oneP() || st.mode.inline())
	n0, t0 := s.packets(), time.Now()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
		}
		p1, err := r.Read()
		if err != nil {
			continue // measure over a longer period next time
		}
		n1, t1 := s.packets(), time.Now()
		if s.oneP() {
			s.setInline(true)
			p0, n0, t0 = p1, n1, t1
			continue
		}
		wall := t1.Sub(t0)
		was := st.mode
		x := spreadSample{
			pressure: cpustat.Share(p0, p1, wall),
			rate:     float64(n1-n0) / wall.Seconds(),
			elapsed:  wall,
		}
		next := st.step(x)
		s.setInline(next.inline())
		if next != was {
			s.log.Debug("spread decision", "mode", next.String(), "pressure", x.pressure, "rate", x.rate)
		}
		p0, n0, t0 = p1, n1, t1
	}
}
