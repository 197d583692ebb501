package stages

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/stages/cpustat"
)

// TestSpreadDecision walks the spread decision through the loads it meets:
// an uncontended machine keeps the pools; a contended one where the pools
// move no more than inline goes inline; one where they move more keeps
// them, checked again after holds that double; inline goes back to the
// pools once nothing waits for a CPU; traffic too light to tell keeps the
// pools.
func TestSpreadDecision(t *testing.T) {
	const p = spreadPeriod
	calm := func(rate float64) spreadSample { return spreadSample{pressure: 0.05, rate: rate, elapsed: p} }
	busy := func(rate float64) spreadSample { return spreadSample{pressure: 0.7, rate: rate, elapsed: p} }
	periods := func(d time.Duration) int { return int(d / p) }
	type step struct {
		x    spreadSample
		want spreadMode
	}
	repeat := func(n int, s step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"uncontended keeps the pools", repeat(50, step{calm(500e3), modeSpread})},
		{"contended, pools no better: inline, and it stays while contended", cat(
			[]step{{busy(300e3), modeProbe}, {busy(300e3), modeTrial}, {busy(330e3), modeCheck}, {busy(300e3), modeInline}},
			repeat(periods(spreadHoldMin), step{busy(300e3), modeInline}),
			// the hold is over: the pools get another trial, this period its "before"
			[]step{{busy(300e3), modeTrial}, {busy(310e3), modeCheck}, {busy(300e3), modeInline}},
			repeat(periods(2*spreadHoldMin), step{busy(300e3), modeInline}),
			[]step{{busy(300e3), modeTrial}},
		)},
		{"contended, pools better: spread, checked again after doubling holds", cat(
			[]step{{busy(300e3), modeProbe}, {busy(300e3), modeTrial}, {busy(450e3), modeCheck}, {busy(300e3), modeSpread}},
			repeat(periods(spreadHoldMin), step{busy(450e3), modeSpread}),
			[]step{{busy(450e3), modeProbe}, {busy(300e3), modeTrial}, {busy(450e3), modeCheck}, {busy(300e3), modeSpread}},
			repeat(periods(2*spreadHoldMin), step{busy(450e3), modeSpread}),
			[]step{{busy(450e3), modeProbe}},
		)},
		{"a rate that climbs through the trial is no gain", []step{
			{busy(300e3), modeProbe}, {busy(250e3), modeTrial}, {busy(330e3), modeCheck}, {busy(400e3), modeInline},
		}},
		{"an idle spell keeps the verdict, and the hold", cat(
			[]step{{busy(300e3), modeProbe}, {busy(300e3), modeTrial}, {busy(290e3), modeCheck}, {busy(300e3), modeInline}},
			repeat(20, step{calm(0), modeInline}),
			// the load is back: the hold (0.5 s of traffic) still runs
			repeat(periods(spreadHoldMin), step{busy(300e3), modeInline}),
			[]step{{busy(300e3), modeTrial}, {busy(290e3), modeCheck}, {busy(300e3), modeInline}},
			// the same verdict twice: the hold has doubled
			repeat(periods(2*spreadHoldMin), step{busy(300e3), modeInline}),
			[]step{{busy(300e3), modeTrial}, {busy(450e3), modeCheck}, {busy(300e3), modeSpread}},
			// a different verdict: back to the shortest hold, which idle
			// spells do not shorten
			repeat(periods(spreadHoldMin)-1, step{busy(450e3), modeSpread}),
			repeat(20, step{busy(0), modeSpread}),
			[]step{{busy(450e3), modeSpread}, {busy(450e3), modeProbe}},
		)},
		{"an idle tunnel on a busy machine is left alone", repeat(30, step{busy(1e3), modeSpread})},
		{"traffic gone during the probe: the pools stay, for a hold", cat(
			[]step{{busy(300e3), modeProbe}, {busy(5e3), modeSpread}},
			repeat(periods(spreadHoldMin), step{busy(300e3), modeSpread}),
			[]step{{busy(300e3), modeProbe}},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s spreadState
			for i, st := range tc.steps {
				if got := s.step(st.x); got != st.want {
					t.Fatalf("step %d (%+v): mode %v, want %v (state %+v)", i, st.x, got, st.want, s)
				}
			}
		})
	}
}

// fakePressure is a CPU pressure reader whose share of waiting the test
// sets; it advances with the real clock, as the spreader's ticker does.
type fakePressure struct {
	share atomic.Value // float64
	at    time.Time
	some  time.Duration
}

func (f *fakePressure) open() (pressureReader, error) { return f, nil }
func (f *fakePressure) Close() error                  { return nil }

func (f *fakePressure) Read() (cpustat.Pressure, error) {
	now := time.Now()
	if !f.at.IsZero() {
		f.some += time.Duration(f.share.Load().(float64) * float64(now.Sub(f.at)))
	}
	f.at = now
	return cpustat.Pressure{Some: f.some}, nil
}

// TestSpreaderMovesTheLimit: the spreader, under a contended machine where
// the pools move no more packets than inline, takes every batch inline;
// when the machine calms down and the pools move twice the packets, large
// batches spread again, and stay so. A tunnel with a fixed limit, or no
// pressure reading, keeps its limit.
func TestSpreaderMovesTheLimit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tun := &Tunnel{}
	tun.inline.max.Store(defaultInlineMax)
	var packets atomic.Uint64
	f := &fakePressure{}
	f.share.Store(0.9)
	s := &spreader{t: tun, open: f.open, log: log, packets: packets.Load}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	// 500,000 packets a second; with poolsGain set, twice that while
	// large batches spread.
	var poolsGain atomic.Bool
	countTraffic(t, &packets, func() uint64 {
		if poolsGain.Load() && tun.inline.limit() == defaultInlineMax {
			return 1000
		}
		return 500
	})
	waitFor(t, 5*time.Second, func() bool { return tun.inline.limit() == inlineAll },
		func() string { return "the limit never went to inlineAll under pressure" })
	poolsGain.Store(true)
	f.share.Store(0.0)
	waitFor(t, 5*time.Second, func() bool { return tun.inline.limit() == defaultInlineMax },
		func() string { return "the limit never came back once the pressure eased and the pools paid" })
	// Past the trial's inline "check", the pools hold for a while.
	var since time.Time
	waitFor(t, 5*time.Second, func() bool {
		if tun.inline.limit() != defaultInlineMax {
			since = time.Time{}
			return false
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) >= 3*spreadPeriod
	}, func() string { return "the pools paid, and yet the limit did not stay at defaultInlineMax" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for _, fixed := range []bool{true, false} {
		tun := &Tunnel{}
		tun.inline.max.Store(3)
		tun.inline.fixed = fixed
		open := f.open
		if !fixed {
			open = func() (pressureReader, error) { return nil, cpustat.ErrUnsupported }
		}
		s := &spreader{t: tun, open: open, log: log, packets: packets.Load}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { done <- s.Serve(ctx) }()
		time.Sleep(3 * spreadPeriod)
		cancel()
		if err := <-done; err != nil || tun.inline.limit() != 3 {
			t.Errorf("fixed %v: limit %d, err %v; want 3 untouched", fixed, tun.inline.limit(), err)
		}
	}
}

// TestSpreaderOneP: on one P every batch goes inline, whatever the
// pressure and whatever a trial of the pools would show, with or without
// a pressure reading; when a second P appears, large batches spread
// again (without a reading) or the decision resumes (with one).
func TestSpreaderOneP(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, reading := range []bool{true, false} {
		t.Run(fmt.Sprintf("pressure reading %v", reading), func(t *testing.T) {
			tun := &Tunnel{}
			tun.inline.max.Store(defaultInlineMax)
			var packets atomic.Uint64
			f := &fakePressure{}
			f.share.Store(0.0) // no pressure: on two Ps the pools stay
			open := f.open
			if !reading {
				open = func() (pressureReader, error) { return nil, cpustat.ErrUnsupported }
			}
			var procs atomic.Int64
			procs.Store(1)
			s := &spreader{t: tun, open: open, log: log, packets: packets.Load, procs: func() int { return int(procs.Load()) }}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			countTraffic(t, &packets, func() uint64 { return 500 })
			waitFor(t, 2*time.Second, func() bool { return tun.inline.limit() == inlineAll },
				func() string { return "one P: the limit never went to inlineAll" })
			for range 5 {
				time.Sleep(spreadPeriod)
				if l := tun.inline.limit(); l != inlineAll {
					t.Fatalf("one P: the limit went back to %d", l)
				}
			}
			procs.Store(2)
			waitFor(t, 2*time.Second, func() bool { return tun.inline.limit() == defaultInlineMax },
				func() string { return "two Ps and no pressure: large batches never spread again" })
		})
	}
}

// countTraffic adds n() to packets every millisecond until the test ends:
// traffic, so that the spread decision has something to measure.
func countTraffic(t *testing.T, packets *atomic.Uint64, n func() uint64) {
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				packets.Add(n())
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-stopped })
}
