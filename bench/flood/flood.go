package flood

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/google/pprof/profile"
	"golang.org/x/crypto/curve25519"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/core/memrig"
	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/wire"
)

const (
	// floodFactor is the flood's rate over the machine's X25519 rate.
	floodFactor = 10
	// floodSources is how many source addresses the flood comes from:
	// far more than the per-source limit could hold back.
	floodSources = 1 << 16
	// floodDistinct is how many different initiations the flood cycles
	// through; they differ only to look like real traffic.
	floodDistinct = 4096
	// floodTick is how often the flood tops up its rate; floodBatch the
	// most initiations it hands the socket at once.
	floodTick  = time.Millisecond
	floodBatch = 256
	// x25519Tries short runs measure the X25519 rate; the best counts, as
	// for the AEAD limit: it is a ceiling.
	x25519Tries   = 3
	x25519RunTime = 100 * time.Millisecond
)

// Default measured time per phase (unloaded, flooded): long enough to
// span the tunnel's one-second under-load window several times.
const (
	DefaultDuration = 3 * time.Second
	QuickDuration   = 2 * time.Second
)

// Config is one run of the flood mode. The zero value runs it with
// the defaults named in the comments, which Quick makes shorter.
type Config struct {
	Quick bool
	// Duration is the measured time of each phase, alone and flooded:
	// default 3 s, quick 2 s.
	Duration time.Duration
	Repeat   int // figures are medians of this many runs; default 1
	// Packets, when positive, makes each phase one segment that moves
	// exactly this many packets per direction (tests).
	Packets   int
	Size      int            // inner packet size; default wire.MaxInnerSize
	Direction core.Direction // the data's direction; default core.Both
	Out       core.Out       // progress
}

// WithDefaults fills c's zero fields.
func (c Config) WithDefaults() Config {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
		if c.Quick {
			c.Duration = QuickDuration
		}
	}
	c.Repeat = max(c.Repeat, 1)
	c.Size = cmp.Or(c.Size, wire.MaxInnerSize)
	c.Direction = cmp.Or(c.Direction, core.Both)
	return c
}

// Report is the flood mode's figures: medians over the repeats in
// Runs. Rates are per second of wall time.
type Report struct {
	Direction  core.Direction `json:"direction"`
	PacketSize int            `json:"packet_size"`
	Procs      int            `json:"gomaxprocs"`
	Workers    int            `json:"workers"`
	Sources    int            `json:"sources"`
	// X25519PerSecond is one core's X25519 rate, what a responder that
	// did Curve25519 work for every initiation could at best answer;
	// TargetPerSecond is floodFactor times it, the flood's rate.
	X25519PerSecond float64 `json:"x25519_per_s"`
	TargetPerSecond float64 `json:"target_initiations_per_s"`
	// BudgetPerSecond and BudgetBurst are the tunnel's budget of
	// Curve25519 work for received handshakes, in initiations: calibrated
	// when the tunnel was made (stages.HandshakeBudget).
	BudgetPerSecond float64 `json:"budget_initiations_per_s"`
	BudgetBurst     float64 `json:"budget_burst_initiations"`
	Unloaded        Phase   `json:"unloaded"`
	Flooded         Phase   `json:"flooded"`
	// Kept is the data's rate flooded over its rate alone: the median,
	// over every pair of adjacent segments of every run, of the one's
	// Gbit/s over the other's. A change in the machine's other load falls
	// on both of a pair; a median of the pairs is moved less by one
	// disturbed segment than the ratio of the totals would be.
	Kept float64 `json:"kept"`
	Runs []Run   `json:"runs"`
}

// Run is one repeat: the tunnel alone and under the flood, in
// alternating segments.
type Run struct {
	X25519PerSecond float64 `json:"x25519_per_s"`
	BudgetPerSecond float64 `json:"budget_initiations_per_s"`
	BudgetBurst     float64 `json:"budget_burst_initiations"`
	Unloaded        Phase   `json:"unloaded"`
	Flooded         Phase   `json:"flooded"`
	// PairRatios are each segment pair's flooded Gbit/s over its alone.
	PairRatios []float64 `json:"pair_ratios"`
}

// Phase is one phase's figures. CPU comes from a profile of the
// measured intervals, by the engine's stage labels: TunnelCPU is every
// stage's (100 = one core), HandshakeCPU the handshake workers'.
type Phase struct {
	Gbps          float64 `json:"gbit_per_s"` // inner bytes, both directions together
	Seconds       float64 `json:"seconds"`    // measured time
	WallSeconds   float64 `json:"wall_seconds"`
	TunnelCPU     float64 `json:"tunnel_cpu_percent"`
	HandshakeCPU  float64 `json:"handshake_cpu_percent"`
	UDPRecvCPU    float64 `json:"udprecv_cpu_percent"`
	Received      float64 `json:"initiations_received_per_s"` // reached the tunnel's socket
	SocketDropped float64 `json:"socket_dropped_per_s"`       // the socket's queue was full
	QueueFull     float64 `json:"queue_full_per_s"`           // udprecv found the handshake queue full
	Taken         float64 `json:"taken_per_s"`                // initiations the handshake workers took
	Worked        float64 `json:"curve25519_per_s"`           // initiations that cost Curve25519 work
	Answered      float64 `json:"answered_per_s"`             // handshake responses sent
	CookieReplies float64 `json:"cookie_replies_per_s"`
	Invalid       float64 `json:"invalid_per_s"` // rejected by the handshake workers (handshake_invalid)
	RateLimited   float64 `json:"rate_limited_per_s"`
	Throttled     float64 `json:"throttled_per_s"`
	Dropped       float64 `json:"dropped_per_s"` // queue full, invalid (incl. rate-limited and throttled)
}

// Measure runs the flood mode. It returns the profiles of the flooded
// phases for --cpuprofile.
func Measure(ctx context.Context, cfg Config) (*Report, []*profile.Profile, error) {
	cfg = cfg.WithDefaults()
	procs := runtime.NumCPU()
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	mc := memrig.Case{Direction: cfg.Direction, Engine: string(stages.EnginePipeline), PacketSize: cfg.Size, Peers: 1, Procs: procs, Workers: procs}
	prog := cfg.Out.Progress(2 * cfg.Repeat)
	defer prog.Finish()
	rep := &Report{Direction: mc.Direction, PacketSize: mc.PacketSize, Procs: procs, Workers: procs, Sources: floodSources}
	var profs []*profile.Profile
	for range cfg.Repeat {
		prog.Begin("X25519 rate, one core")
		x := measureX25519()
		prog.End("X25519 rate, one core", fmt.Sprintf("%.0f/s", x))
		run, p, err := floodOnce(ctx, cfg, mc, x, prog)
		if err != nil {
			return nil, nil, err
		}
		rep.Runs = append(rep.Runs, run)
		profs = append(profs, p)
	}
	rep.X25519PerSecond = core.Median(floodField(rep.Runs, func(r Run) float64 { return r.X25519PerSecond }))
	rep.TargetPerSecond = floodFactor * rep.X25519PerSecond
	rep.BudgetPerSecond = core.Median(floodField(rep.Runs, func(r Run) float64 { return r.BudgetPerSecond }))
	rep.BudgetBurst = core.Median(floodField(rep.Runs, func(r Run) float64 { return r.BudgetBurst }))
	rep.Unloaded = medianPhase(rep.Runs, func(r Run) Phase { return r.Unloaded })
	rep.Flooded = medianPhase(rep.Runs, func(r Run) Phase { return r.Flooded })
	var pairs []float64
	for _, r := range rep.Runs {
		pairs = append(pairs, r.PairRatios...)
	}
	rep.Kept = core.Median(pairs)
	return rep, profs, nil
}

// floodOnce measures one tunnel alone and under a flood at floodFactor ×
// x25519 initiations a second. The two phases alternate in floodSegments
// segments each, so that a change in the machine's other load during the
// run (it is shared, often) falls on both alike.
func floodOnce(ctx context.Context, cfg Config, mc memrig.Case, x25519 float64, prog *core.Progress) (Run, *profile.Profile, error) {
	run := Run{X25519PerSecond: x25519}
	rig, err := memrig.New(memrig.Options{Engine: stages.Engine(mc.Engine), Workers: mc.Workers, PacketSize: mc.PacketSize})
	if err != nil {
		return run, nil, err
	}
	defer rig.Close()
	b := rig.Tunnel().HandshakeBudget()
	run.BudgetPerSecond, run.BudgetBurst = b.Initiations(), b.Burst/noise.DHPerInitiation
	m := &memrig.Measurement{Case: mc, Rig: rig, Prof: &cpuprof.Interval{}}
	rate, err := m.Round(memrig.WarmupPackets)
	if err != nil {
		return run, nil, err
	}
	gen := newFloodGen(rig, floodFactor*x25519)
	what := fmt.Sprintf("%s, alone and flooded at %.0f initiations/s", mc, gen.rate)
	prog.Begin(what)
	segments, seg := floodSegments, cfg.Duration/floodSegments
	if cfg.Packets > 0 {
		segments = 1
	}
	var alone, flooded floodTotals
	for i := range segments {
		// Alone first in even segments, flooded first in odd ones, so that
		// a trend in the machine's load favours neither.
		order := []*floodGen{nil, gen}
		if i%2 == 1 {
			order = []*floodGen{gen, nil}
		}
		var gbps [2]float64 // alone, flooded
		for _, g := range order {
			acc, k := &alone, 0
			if g != nil {
				acc, k = &flooded, 1
			}
			s, err := floodSegment(ctx, m, seg, cfg.Packets, rate, g, acc)
			if err != nil {
				return run, nil, err
			}
			rate, gbps[k] = s, s.Gbps(mc.PacketSize)
		}
		run.PairRatios = append(run.PairRatios, core.Ratio(gbps[1], gbps[0]))
	}
	if run.Unloaded, _, err = alone.phase(mc.PacketSize); err != nil {
		return run, nil, err
	}
	var p *profile.Profile
	if run.Flooded, p, err = flooded.phase(mc.PacketSize); err != nil {
		return run, nil, err
	}
	prog.End(what, fmt.Sprintf("%.2f -> %.2f Gbit/s, %.0f cookie replies/s", run.Unloaded.Gbps, run.Flooded.Gbps, run.Flooded.CookieReplies))
	return run, p, nil
}

// floodSegments is how many times the two phases alternate in one run:
// short segments, so that both see the same machine.
const floodSegments = 10

// floodTotals is what one phase gathers over its segments.
type floodTotals struct {
	data               memrig.Sample
	wall               time.Duration
	fed, socketDropped uint64
	hs                 stages.HandshakeStats // counted during the phase
	queueFull, invalid uint64
	profs              []*profile.Profile
}

// floodSegment moves data for d (or exactly packets, if positive), with
// gen flooding meanwhile unless it is nil, and adds the data and the
// tunnel's counters to acc. It returns the segment's data sample, the
// rate that sizes the next rounds.
func floodSegment(ctx context.Context, m *memrig.Measurement, d time.Duration, packets int, rate memrig.Sample, gen *floodGen, acc *floodTotals) (memrig.Sample, error) {
	t := m.Rig.Tunnel()
	m.Profs = nil
	hs0, st0 := t.HandshakeStats(), t.Stats()
	t0 := time.Now()
	if gen != nil {
		gen.start()
	}
	var s memrig.Sample
	var err error
	if packets > 0 {
		s, err = m.Round(packets)
	} else {
		s, err = m.ForDuration(ctx, d, rate)
	}
	if gen != nil {
		fed, dropped := gen.stop()
		acc.fed += fed
		acc.socketDropped += dropped
	}
	acc.wall += time.Since(t0)
	if err != nil {
		return s, err
	}
	hs1, st1 := t.HandshakeStats(), t.Stats()
	acc.data.Add(s)
	acc.profs = append(acc.profs, m.Profs...)
	acc.hs.Initiations += hs1.Initiations - hs0.Initiations
	acc.hs.Worked += hs1.Worked - hs0.Worked
	acc.hs.Responses += hs1.Responses - hs0.Responses
	acc.hs.CookieReplies += hs1.CookieReplies - hs0.CookieReplies
	acc.hs.RateLimited += hs1.RateLimited - hs0.RateLimited
	acc.hs.Throttled += hs1.Throttled - hs0.Throttled
	acc.queueFull += stageDrops(st1, "udprecv", stages.DropQueueFull) - stageDrops(st0, "udprecv", stages.DropQueueFull)
	acc.invalid += stageDrops(st1, "handshake", stages.DropHandshake) - stageDrops(st0, "handshake", stages.DropHandshake)
	return s, nil
}

// stageDrops is one stage's drops for one reason in a snapshot.
func stageDrops(ss []stages.StageStats, stage string, r stages.DropReason) uint64 {
	for _, s := range ss {
		if s.Name == stage {
			return s.Drops[r]
		}
	}
	return 0
}

// phase turns the totals into figures, and returns the merged profile.
func (acc *floodTotals) phase(packetSize int) (Phase, *profile.Profile, error) {
	p, err := cpuprof.Merge(acc.profs)
	if err != nil {
		return Phase{}, nil, err
	}
	s := acc.data
	wall := acc.wall.Seconds()
	ph := Phase{Gbps: s.Gbps(packetSize), Seconds: s.Seconds, WallSeconds: wall}
	if p != nil {
		shares, _, _, err := cpuprof.StageShares(p)
		if err != nil {
			return Phase{}, nil, err
		}
		pct := func(sec float64) float64 { return 100 * core.Ratio(sec, s.Seconds) }
		for _, sh := range shares {
			switch sh.Stage {
			case cpuprof.NoStage:
				continue
			case "handshake":
				ph.HandshakeCPU = pct(sh.Seconds)
			case "udprecv":
				ph.UDPRecvCPU = pct(sh.Seconds)
			}
			ph.TunnelCPU += pct(sh.Seconds)
		}
	}
	per := func(n uint64) float64 { return core.Ratio(float64(n), wall) }
	ph.Received = per(acc.fed)
	ph.SocketDropped = per(acc.socketDropped)
	ph.QueueFull = per(acc.queueFull)
	ph.Invalid = per(acc.invalid)
	ph.Taken = per(acc.hs.Initiations)
	ph.Worked = per(acc.hs.Worked)
	ph.Answered = per(acc.hs.Responses)
	ph.CookieReplies = per(acc.hs.CookieReplies)
	ph.RateLimited = per(acc.hs.RateLimited)
	ph.Throttled = per(acc.hs.Throttled)
	ph.Dropped = ph.QueueFull + ph.Invalid
	return ph, p, nil
}

// measureX25519 returns one core's X25519 rate: the best of a few short
// runs on one goroutine.
func measureX25519() float64 {
	var priv, pub [32]byte
	rand.Read(priv[:])
	pk, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
	copy(pub[:], pk)
	best := 0.0
	for range x25519Tries {
		n, t0 := 0, time.Now()
		for time.Since(t0) < x25519RunTime {
			for range 16 {
				if _, err := curve25519.X25519(priv[:], pub[:]); err != nil {
					panic(err) // unreachable: pub is a real public key
				}
			}
			n += 16
		}
		best = max(best, float64(n)/time.Since(t0).Seconds())
	}
	return best
}

// floodGen sends the flood: initiations with a valid MAC1 for the tunnel,
// from floodSources addresses, at a given rate, into the rig's socket.
type floodGen struct {
	tunnel *stages.Tunnel
	rig    *memrig.Rig
	rate   float64 // initiations per second
	dgrams [][]byte
	from   []netip.AddrPort

	quit, done chan struct{}
	fed        atomic.Uint64 // handed to the socket since start
	dropped    atomic.Uint64 // the socket's queue was full
	total      uint64        // handed to the socket over every start
}

func newFloodGen(rig *memrig.Rig, rate float64) *floodGen {
	var g noise.CookieGenerator
	g.Init(rig.Tunnel().PublicKey())
	distinct := make([][]byte, floodDistinct)
	for i := range distinct {
		b := make([]byte, wire.InitiationSize)
		rand.Read(b)
		b[0], b[1], b[2], b[3] = byte(wire.TypeInitiation), 0, 0, 0
		g.AddMACs(b, time.Now()) // no cookie: MAC2 stays zero
		distinct[i] = b
	}
	f := &floodGen{tunnel: rig.Tunnel(), rig: rig, rate: rate, dgrams: make([][]byte, floodSources), from: make([]netip.AddrPort, floodSources)}
	for i := range floodSources {
		f.dgrams[i] = distinct[i%floodDistinct]
		// 198.18.0.0/15 is for benchmarks (RFC 2544).
		f.from[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}), uint16(1024+i%50000))
	}
	return f
}

// start starts the flood afresh: its rate and counts begin now.
func (f *floodGen) start() {
	f.quit, f.done = make(chan struct{}), make(chan struct{})
	f.fed.Store(0)
	f.dropped.Store(0)
	go f.run()
}

// stop ends the flood, waits (a second at most) until the tunnel has
// read what the socket still held and its handshake workers have emptied its
// queue, so that none of the flood spills into the next phase, and
// returns how many initiations the socket took and how many it dropped.
func (f *floodGen) stop() (fed, dropped uint64) {
	close(f.quit)
	<-f.done
	fed, dropped = f.fed.Load(), f.dropped.Load()
	f.total += fed
	drained := func() bool {
		if f.rig.FedFromRead() < f.total {
			return false
		}
		for _, s := range f.tunnel.Stats() {
			if s.Name == "handshake" {
				return s.QueueDepth == 0
			}
		}
		return true
	}
	for deadline := time.Now().Add(time.Second); !drained() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	return fed, dropped
}

// run tops the flood up to its rate every floodTick, in batches, until
// stopped. Closes done on return.
func (f *floodGen) run() {
	defer close(f.done)
	tick := time.NewTicker(floodTick)
	defer tick.Stop()
	start := time.Now()
	var sent uint64
	pos := 0
	for {
		select {
		case <-f.quit:
			return
		case <-tick.C:
		}
		want := uint64(f.rate * time.Since(start).Seconds())
		for sent < want {
			k := int(min(want-sent, floodBatch, uint64(len(f.dgrams)-pos)))
			if f.rig.FeedFrom(f.dgrams[pos:pos+k], f.from[pos:pos+k]) {
				f.fed.Add(uint64(k))
			} else {
				f.dropped.Add(uint64(k))
			}
			sent += uint64(k)
			pos = (pos + k) % len(f.dgrams)
		}
	}
}

func floodField(runs []Run, f func(Run) float64) []float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	return xs
}

// medianPhase is the median of every figure of one phase over the runs.
func medianPhase(runs []Run, phase func(Run) Phase) Phase {
	m := func(f func(Phase) float64) float64 {
		return core.Median(floodField(runs, func(r Run) float64 { return f(phase(r)) }))
	}
	return Phase{
		Gbps:          m(func(p Phase) float64 { return p.Gbps }),
		Seconds:       m(func(p Phase) float64 { return p.Seconds }),
		WallSeconds:   m(func(p Phase) float64 { return p.WallSeconds }),
		TunnelCPU:     m(func(p Phase) float64 { return p.TunnelCPU }),
		HandshakeCPU:  m(func(p Phase) float64 { return p.HandshakeCPU }),
		UDPRecvCPU:    m(func(p Phase) float64 { return p.UDPRecvCPU }),
		Received:      m(func(p Phase) float64 { return p.Received }),
		SocketDropped: m(func(p Phase) float64 { return p.SocketDropped }),
		QueueFull:     m(func(p Phase) float64 { return p.QueueFull }),
		Taken:         m(func(p Phase) float64 { return p.Taken }),
		Worked:        m(func(p Phase) float64 { return p.Worked }),
		Answered:      m(func(p Phase) float64 { return p.Answered }),
		CookieReplies: m(func(p Phase) float64 { return p.CookieReplies }),
		Invalid:       m(func(p Phase) float64 { return p.Invalid }),
		RateLimited:   m(func(p Phase) float64 { return p.RateLimited }),
		Throttled:     m(func(p Phase) float64 { return p.Throttled }),
		Dropped:       m(func(p Phase) float64 { return p.Dropped }),
	}
}
