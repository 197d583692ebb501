package stages

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/supervisor/clock"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// TestHandshakeWorkersInParallel: with two handshake workers, one held
// in the middle of a handshake (c's, just before its keys are
// installed) does not hold up another peer's: the other worker answers
// p meanwhile.
func TestHandshakeWorkersInParallel(t *testing.T) {
	net := memudp.NewNetworkConfig(blocking)
	leakCheck(t)
	c, cpc := newRawPeer(t, net, netip.MustParseAddrPort("203.0.113.8:1000"), host{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("fd00::3")})
	e, p := withRawPeerOn(t, net, tunnelSpec{hsWorkers: 2, faults: true}, cpc)
	held, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	hook := func(at racePoint) {
		if at == raceBeforeInstall && first.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}
	e.tun.faults.race.Store(&hook)
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold()
	c.attach(e)
	c.sendInitiation()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatalf("no worker took c's initiation\n%s", fmtStats(e.tun.Stats()))
	}
	p.sendInitiation()
	p.recvType(wire.TypeResponse, 10*time.Second)
	unhold()
	c.recvType(wire.TypeResponse, 10*time.Second)
	if s := stageStats(t, e.tun.Stats(), "handshake"); s.Instances != 2 {
		t.Errorf("handshake stage has %d instances, want 2", s.Instances)
	}
}

// TestHelpersWaitOutLoad: under load only the first handshake worker
// takes messages; the others wait until the load is over, so that a
// flood gets one worker's share of the CPU. A helper may take the one
// message it was already waiting for when the load began. Once the load
// window has passed, the first worker's next message wakes them.
func TestHelpersWaitOutLoad(t *testing.T) {
	const (
		workers = 3
		flood   = 60
	)
	clk := fakeClock()
	net := memudp.NewNetworkConfig(blocking)
	leakCheck(t)
	f, _ := newRawPeer(t, net, netip.MustParseAddrPort("203.0.113.9:2000"), host{netip.MustParseAddr("10.9.0.9"), netip.MustParseAddr("fd09::9")})
	// A budget of one initiation: the first flood message spends it, and
	// from the next on the pool is under load.
	e, _ := withRawPeerOn(t, net, tunnelSpec{clock: clk, hsWorkers: workers, hsBudget: testBudget(1, 1)})
	f.attach(e)
	msgs := floodInitiations(t, e.key.Public(), flood+1)
	f.send(msgs[0])
	waitFor(t, 10*time.Second, func() bool { return handshakesProcessed(t, e) == 1 },
		func() string { return "the first message was not processed\n" + fmtStats(e.tun.Stats()) })
	for i := 1; i <= flood; i++ {
		f.send(msgs[i])
		waitFor(t, 10*time.Second, func() bool { return handshakesProcessed(t, e) == uint64(i+1) },
			func() string { return "a flood message was not processed\n" + fmtStats(e.tun.Stats()) })
	}
	if hs := e.tun.HandshakeStats(); hs.Worked != 1 || hs.CookieReplies != flood {
		t.Fatalf("worked on %d, cookie replies %d; want 1 and %d", hs.Worked, hs.CookieReplies, flood)
	}
	handled := workerHandled(t, e)
	for i, n := range handled[1:] {
		if n > 2 { // the message it waited for as the load began, and the first message
			t.Errorf("helper %d took %d of %d messages under load: %v", i+1, n, flood+1, handled)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return e.tun.hsPool.waiting.Load() == workers-1 },
		func() string { return "the helpers are not all waiting" })

	// The load over (a second later, the budget refilled), the first
	// worker's next message wakes the helpers.
	clk.Advance(underLoadAfterTime + 5*time.Second)
	f.send(floodInitiations(t, e.key.Public(), 1)...)
	waitFor(t, 10*time.Second, func() bool { return e.tun.hsPool.waiting.Load() == 0 },
		func() string { return "the helpers did not wake after the load" })
}

// workerHandled is how many messages each handshake worker finished with.
func workerHandled(t *testing.T, e *end) []uint64 {
	t.Helper()
	for _, s := range e.tun.counters.stages {
		if s.name == "handshake" {
			var out []uint64
			for _, c := range s.instances {
				out = append(out, c.handled())
			}
			return out
		}
	}
	t.Fatal("no handshake stage")
	return nil
}

// TestWaitOutLoadEndsWithContext: a helper waiting out the load returns
// when the tunnel stops.
func TestWaitOutLoadEndsWithContext(t *testing.T) {
	leakCheck(t)
	clk := clock.NewFake(time.Unix(1e9, 0))
	tn := &Tunnel{clock: clk}
	pool := newHandshakePool(testBudget(1, 1), 2)
	pool.loadUntil = clk.Now().Add(time.Hour)
	w := &handshakeWorker{t: tn, pool: pool, helper: true}
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan bool, 1)
	go func() { res <- w.waitOutLoad(ctx.Done()) }()
	waitFor(t, 5*time.Second, func() bool { return pool.waiting.Load() == 1 }, func() string { return "the helper does not wait" })
	pool.wakeHelpers() // the load is not over: it waits again
	waitFor(t, 5*time.Second, func() bool { return pool.waiting.Load() == 1 }, func() string { return "the helper does not wait again" })
	cancel()
	if ok := <-res; ok {
		t.Fatal("waitOutLoad reported the load over after its context ended")
	}
}

// TestBudgetFor: the budget is HandshakeCPUShare of the cores at the
// X25519 cost, half a second of it at once; a budget that cannot pay
// for one initiation is refused.
func TestBudgetFor(t *testing.T) {
	for _, tc := range []struct {
		cost             time.Duration
		procs            int
		perSecond, burst float64
	}{
		{50 * time.Microsecond, 2, 10_000, 5_000},
		{50 * time.Microsecond, 1, 5_000, 2_500},
		{100 * time.Microsecond, 4, 10_000, 5_000},
		{50 * time.Microsecond, 0, 5_000, 2_500}, // at least one core
	} {
		b := BudgetFor(tc.cost, tc.procs)
		if !near(b.PerSecond, tc.perSecond) || !near(b.Burst, tc.burst) {
			t.Errorf("BudgetFor(%v, %d) = %+v, want %v/s, burst %v", tc.cost, tc.procs, b, tc.perSecond, tc.burst)
		}
		if !near(b.Initiations(), tc.perSecond/noise.DHPerInitiation) {
			t.Errorf("BudgetFor(%v, %d) pays for %v initiations a second", tc.cost, tc.procs, b.Initiations())
		}
	}
	b, cost := CalibrateHandshakeBudget(2)
	if cost < dhCostMin || cost > dhCostMax || b.check() != nil {
		t.Errorf("calibrated: %v per X25519, %+v", cost, b)
	}
	for _, bad := range []HandshakeBudget{{PerSecond: 100, Burst: 3}, {PerSecond: 0, Burst: 100}, {PerSecond: -1, Burst: 100}} {
		c := Config{PrivateKey: mustKey(t), HandshakeBudget: bad}
		if err := c.Check(); !errors.Is(err, ErrConfig) {
			t.Errorf("budget %+v: Check() = %v, want ErrConfig", bad, err)
		}
	}
}

func near(a, b float64) bool { return a > b*0.999 && a < b*1.001 }
