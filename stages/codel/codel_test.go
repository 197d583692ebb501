package codel

import (
	"math"
	"testing"
	"time"
)

var lan = Params{Target: 500 * time.Microsecond, Interval: 5 * time.Millisecond, MTU: 1500}

// sim runs a controller over a queue on a fake clock: a packet leaves every
// gap, and sojourn(now) is how long it waited. It returns the times of the
// drops (or marks) among the packets that left within length.
func sim(p Params, gap, length time.Duration, backlog int, c Class, sojourn func(now time.Duration) time.Duration) (acted []time.Duration, verdicts map[Verdict]int) {
	var s State
	verdicts = map[Verdict]int{}
	for now := gap; now <= length; now += gap {
		v := s.Decide(&p, now, sojourn(now), backlog, c)
		verdicts[v]++
		if v != Deliver {
			acted = append(acted, now)
		}
	}
	return acted, verdicts
}

func TestStandingQueueGetsDropsOrMarks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ecnOn bool
		class Class
		want  Verdict
	}{
		{"drop", false, NotECT, Drop},
		{"drop not-ECT with ECN on", true, NotECT, Drop},
		{"ECN off drops ECT too", false, ECT, Drop},
		{"mark ECT", true, ECT, Mark},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := lan
			p.ECN = tc.ecnOn
			// A queue standing at twice the target for 20 intervals.
			standing := func(time.Duration) time.Duration { return 2 * p.Target }
			acted, verdicts := sim(p, 10*time.Microsecond, 20*p.Interval, 100*1500, tc.class, standing)
			if len(acted) == 0 {
				t.Fatal("a queue standing above target was never acted on")
			}
			if acted[0] < p.Interval {
				t.Errorf("first %v at %v, before one interval (%v) above target", tc.want, acted[0], p.Interval)
			}
			other := Drop
			if tc.want == Drop {
				other = Mark
			}
			if verdicts[tc.want] != len(acted) || verdicts[other] != 0 {
				t.Errorf("verdicts %v, want only %v", verdicts, tc.want)
			}
			// The control law: after the n-th drop of an episode, the
			// next comes interval/sqrt(n) later.
			for i := 1; i < len(acted); i++ {
				want := time.Duration(float64(p.Interval) / math.Sqrt(float64(min(i, maxCount))))
				if got := acted[i] - acted[i-1]; got < want-10*time.Microsecond || got > want+10*time.Microsecond {
					t.Fatalf("gap %d: %v, want %v (interval/sqrt(%d))", i, got, want, i)
				}
			}
		})
	}
}

func TestDrainingQueueNeverDrops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sojourn func(now time.Duration) time.Duration
		backlog int
	}{
		{"below target", func(time.Duration) time.Duration { return lan.Target - 1 }, 1 << 20},
		// Bursts far above target that drain within an interval: the
		// good queue CoDel leaves alone.
		{"bursts that drain", func(now time.Duration) time.Duration {
			phase := now % (lan.Interval * 3 / 2)
			if phase < lan.Interval*9/10 {
				return 10 * lan.Target * phase / lan.Interval
			}
			return 0
		}, 1 << 20},
		// One packet left: no standing queue to remove.
		{"one packet", func(time.Duration) time.Duration { return time.Second }, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if acted, _ := sim(lan, 10*time.Microsecond, 100*lan.Interval, tc.backlog, NotECT, tc.sojourn); len(acted) > 0 {
				t.Fatalf("%d drops, first at %v", len(acted), acted[0])
			}
		})
	}
}

// TestDropsStopWhenQueueDrains: an episode ends with the first packet
// below target, and the next one starts only after another whole interval
// above it.
func TestDropsStopWhenQueueDrains(t *testing.T) {
	var s State
	p := lan
	now := time.Duration(0)
	step := func(sojourn time.Duration) Verdict {
		now += 10 * time.Microsecond
		return s.Decide(&p, now, sojourn, 1<<20, NotECT)
	}
	for now < 3*p.Interval {
		step(2 * p.Target)
	}
	if !s.Dropping() {
		t.Fatal("not dropping after three intervals above target")
	}
	if v := step(p.Target / 2); v != Deliver || s.Dropping() {
		t.Fatalf("below target: %v, dropping %v", v, s.Dropping())
	}
	back := now
	for now < back+p.Interval-20*time.Microsecond {
		if v := step(2 * p.Target); v != Deliver {
			t.Fatalf("%v %v after the queue drained, within an interval", v, now-back)
		}
	}
}

// TestResumesRecentDropRate: an episode that starts soon after the last
// one ended takes up the drop rate the last one needed, rather than
// starting again from one drop per interval.
func TestResumesRecentDropRate(t *testing.T) {
	var s State
	p := lan
	now := time.Duration(0)
	for now < 10*p.Interval {
		now += 10 * time.Microsecond
		s.Decide(&p, now, 2*p.Target, 1<<20, NotECT)
	}
	before := s.count
	now += 10 * time.Microsecond
	s.Decide(&p, now, 0, 1<<20, NotECT) // drained
	for !s.Dropping() {
		now += 10 * time.Microsecond
		s.Decide(&p, now, 2*p.Target, 1<<20, NotECT)
	}
	if s.count <= 1 || s.count != before-1 {
		t.Fatalf("count %d on re-entry after %d (last episode began at 1)", s.count, before)
	}
}

// TestDropRateCapped: against a flow that never slows down, the drop rate
// stops growing at sqrt(maxCount) per interval.
func TestDropRateCapped(t *testing.T) {
	standing := func(time.Duration) time.Duration { return time.Second }
	acted, _ := sim(lan, time.Microsecond, 2000*lan.Interval, 1<<20, NotECT, standing)
	minGap := lan.Interval / time.Duration(math.Sqrt(maxCount))
	for i := 1; i < len(acted); i++ {
		if gap := acted[i] - acted[i-1]; gap < minGap-time.Microsecond { // the clock's step
			t.Fatalf("drop %d came %v after the last, under %v", i, gap, minGap)
		}
	}
	last := acted[len(acted)-1] - acted[len(acted)-2]
	if last > minGap+time.Microsecond {
		t.Fatalf("rate never reached the cap: last gap %v", last)
	}
}

func TestDecideAllocs(t *testing.T) {
	var s State
	now := time.Duration(0)
	if n := testing.AllocsPerRun(1000, func() {
		now += time.Microsecond
		s.Decide(&lan, now, time.Millisecond, 1<<20, NotECT)
	}); n != 0 {
		t.Fatalf("%v allocations per Decide", n)
	}
}

// TestSparedPacketsPassTheirDrop: a spared packet is never dropped or
// marked; a drop due when one leaves falls on the next packet instead, so
// the drops of a queue of mixed packets come as often as in one without
// spared packets, all on the others.
func TestSparedPacketsPassTheirDrop(t *testing.T) {
	for _, ecn := range []bool{false, true} {
		p := lan
		p.ECN = ecn
		var mixed, plain State
		var mixedActs, plainActs int
		now := time.Duration(0)
		for i := 0; now < 50*p.Interval; i++ {
			now += 10 * time.Microsecond
			c := NotECT
			if i%3 == 0 {
				c = Spared
			}
			v := mixed.Decide(&p, now, 2*p.Target, 1<<20, c)
			if c == Spared && v != Deliver {
				t.Fatalf("ECN %v: spared packet %d: %v", ecn, i, v)
			}
			if v != Deliver {
				mixedActs++
				// After a drop, the queue asks again at the same now,
				// as it does for the next packet at its head.
				continue
			}
			if plain.Decide(&p, now, 2*p.Target, 1<<20, NotECT) != Deliver {
				plainActs++
			}
		}
		if plainActs == 0 || mixedActs < plainActs*9/10 || mixedActs > plainActs*11/10 {
			t.Errorf("ECN %v: %d drops among spared packets, %d without", ecn, mixedActs, plainActs)
		}
	}
	// Spared packets alone are never acted on, however long they wait.
	if acted, _ := sim(lan, 10*time.Microsecond, 100*lan.Interval, 1<<20, Spared, func(time.Duration) time.Duration { return time.Second }); len(acted) != 0 {
		t.Fatalf("%d spared packets dropped", len(acted))
	}
}
