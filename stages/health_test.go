package stages

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/supervisor/watchdog"
)

// healthStallAfter is the stall bound of the health tests: long enough
// that a busy stage on a loaded machine never looks stalled, short enough
// for a quick test.
const healthStallAfter = 500 * time.Millisecond

// TestHealthCheckSeesStalledStage: under load a tunnel is healthy; when
// one stage wedges (the fault injector holds it in the middle of a
// packet) the health check reports that stage stalled within the bound;
// when it is released the check is healthy again and no packet was lost.
// Every stage that reads a queue is tried; the edge readers and the
// sequential engine's loops read no queue, and their failures reach the
// check through the supervisor (TestHealthCheckFollowsSupervisor).
func TestHealthCheckSeesStalledStage(t *testing.T) {
	for _, fc := range faultCases[EnginePipeline] {
		if fc.kind == stageUDPRecv || fc.kind == stageTUNRead {
			continue
		}
		t.Run(fc.stage, func(t *testing.T) {
			a, b, atB := faultPair(t, EnginePipeline)
			st := stats(a, b)
			victim := a
			if fc.inbound {
				victim = b
			}
			hc := victim.tun.NewHealthCheck(healthStallAfter)

			// Healthy while traffic flows, for twice the bound.
			next := uint32(1)
			for end := time.Now().Add(2 * healthStallAfter); time.Now().Before(end); next += 64 {
				if err := sendFlows(a, hostA, []host{hostB}, next, 64); err != nil {
					t.Fatal(err)
				}
				if err := hc.Check(time.Now()); err != nil {
					t.Fatalf("unhealthy under load: %v\nstats:\n%s", err, st())
				}
			}

			release := victim.tun.faults.stall(fc.kind)
			// Released before the pair stops, should the test fail: a
			// wedged stage would not stop.
			defer release()
			const more = 1000
			errc := make(chan error, 1)
			go func() { errc <- sendFlows(a, hostA, []host{hostB}, next, more) }()
			var stall *StallError
			waitHealth(t, hc, func(err error) bool { return errors.As(err, &stall) && stalledStage(stall, fc.stage) },
				"a stall of "+fc.stage, st)
			for _, s := range stall.Stalls {
				if s.Waiting == 0 || s.For < healthStallAfter {
					t.Errorf("stall %+v: want packets waiting for at least %v", s, healthStallAfter)
				}
			}
			t.Logf("stalled: %v", stall)

			release()
			waitHealth(t, hc, func(err error) bool { return err == nil }, "healthy after the release", st)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			atB.wait(t, 0, next+more, 10*time.Second, st)
			if _, missing, err := atB.result(0); err != nil || len(missing) != 0 {
				t.Errorf("after the stall: %v, missing %v", err, head(missing))
			}
		})
	}
}

// TestHealthCheckFollowsSupervisor: before Serve and after it the tunnel
// is not running; a stage that keeps failing makes the check unhealthy
// until the tunnel gives up.
func TestHealthCheckFollowsSupervisor(t *testing.T) {
	a, b, _ := faultPair(t, EnginePipeline)
	hc := b.tun.NewHealthCheck(healthStallAfter)
	if err := hc.Check(time.Now()); err != nil {
		t.Fatalf("a running tunnel: %v", err)
	}
	b.tun.faults.panics[stageDecrypt].Store(1 << 40)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for first := uint32(1); streamFlows(a, hostA, []host{hostB}, first, 64, stop) == nil; first += 64 {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	defer func() { close(stop); <-done }()
	waitHealth(t, hc, func(err error) bool { return err != nil }, "unhealthy while a stage keeps failing", stats(a, b))
	select {
	case <-b.errc:
		close(b.errc)
	case <-time.After(10 * time.Second):
		t.Fatal("the tunnel did not give up")
	}
	if err := hc.Check(time.Now()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("after the escalation: %v, want ErrNotRunning", err)
	}
	fresh := &Tunnel{counters: &tunnelCounters{}}
	if err := fresh.NewHealthCheck(time.Second).Check(time.Now()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("before Serve: %v, want ErrNotRunning", err)
	}
}

// waitHealth polls hc until ok accepts its answer, or fails after 10 s.
func waitHealth(t *testing.T, hc *HealthCheck, ok func(error) bool, what string, st func() string) {
	t.Helper()
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err = hc.Check(time.Now()); ok(err) {
			return
		}
	}
	t.Fatalf("%s not seen within 10 s; last check: %v\nstats:\n%s", what, err, st())
}

func stalledStage(e *StallError, stage string) bool {
	return slices.ContainsFunc(e.Stalls, func(s Stall) bool { return s.Stage == stage })
}

// TestWatchdogPingsStopWhileStalled: a watchdog fed by the health check
// pings while the tunnel carries traffic, stops pinging once a stage
// wedges (the check that finds it stalled and every one after it), and
// pings again when the stage recovers: what systemd's WatchdogSec= needs
// to restart a wedged dataplane and leave a working one alone.
func TestWatchdogPingsStopWhileStalled(t *testing.T) {
	const interval = 400 * time.Millisecond
	a, b, atB := faultPair(t, EnginePipeline)
	st := stats(a, b)
	hc := b.tun.NewHealthCheck(interval / 2) // stuck at two checks in a row
	type check struct {
		pings int64
		err   error
	}
	var pings atomic.Int64
	checks := make(chan check, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchdog.Run(ctx, watchdog.Config{Interval: interval, Check: hc.Check,
			Ping:   func() { pings.Add(1) },
			Report: func(err error) { checks <- check{pings.Load(), err} }})
	}()
	defer func() { cancel(); <-done }()
	next := func(what string) check {
		t.Helper()
		select {
		case c := <-checks:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no check while waiting for %s", what)
			return check{}
		}
	}
	// until returns the first check that ok accepts, within 10 s.
	until := func(what string, ok func(check) bool) check {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
			if c := next(what); ok(c) {
				return c
			}
		}
		t.Fatalf("no %s within 10 s\nstats:\n%s", what, st())
		return check{}
	}

	seq := uint32(1)
	for end := time.Now().Add(4 * interval); time.Now().Before(end); seq += 64 {
		if err := sendFlows(a, hostA, []host{hostB}, seq, 64); err != nil {
			t.Fatal(err)
		}
	}
	for len(checks) > 0 {
		if c := next("the healthy checks"); c.err != nil {
			t.Fatalf("unhealthy under load: %v\nstats:\n%s", c.err, st())
		}
	}
	if pings.Load() < 2 {
		t.Fatalf("%d pings in %v of traffic, want at least 2", pings.Load(), 4*interval)
	}

	release := b.tun.faults.stall(stageDecrypt)
	defer release()
	const more = 1000
	errc := make(chan error, 1)
	go func() { errc <- sendFlows(a, hostA, []host{hostB}, seq, more) }()
	c := until("unhealthy check", func(c check) bool { return c.err != nil })
	var stall *StallError
	if !errors.As(c.err, &stall) || !stalledStage(stall, "decrypt") {
		t.Fatalf("unhealthy for another reason: %v", c.err)
	}
	stopped := c.pings
	for range 3 {
		if c = next("more checks"); c.err == nil || c.pings != stopped {
			t.Fatalf("while stalled: check %v, %d pings after the stall was seen at %d", c.err, c.pings, stopped)
		}
	}
	t.Logf("pings stopped at %d: %v", stopped, stall)

	release()
	c = until("ping after the release", func(c check) bool { return c.pings != stopped })
	if c.err != nil {
		t.Errorf("pinged after an unhealthy check: %v", c.err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	atB.wait(t, 0, seq+more, 10*time.Second, st)
}
