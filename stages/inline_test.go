package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// inlineCount is how many packets the inline path counted for stage name:
// the stage's counter instances that only the stages doing its steps
// inline write (addInline appends them after the stage's own).
func inlineCount(t *testing.T, e *end, name string) uint64 {
	t.Helper()
	for _, se := range e.tun.counters.stages {
		if se.name == name {
			if len(se.instances) == len(se.services) {
				t.Fatalf("%s has no inline counters", name)
			}
			var n uint64
			for _, c := range se.instances[len(se.services):] {
				n += c.packets.Load()
			}
			return n
		}
	}
	t.Fatalf("no stage %s", name)
	return 0
}

// TestInlineAndPoolsKeepOrder: two pipeline tunnels stream to each other
// in bursts of random size, now and then pausing until the other side has
// everything, so that each direction switches between its inline path
// (small batches into an empty pipeline) and its pools (large batches, or
// any batch while earlier ones are in flight) hundreds of times. Every
// packet arrives, in order, nothing is dropped, both paths carried
// packets both ways, and at rest nothing is counted in flight.
func TestInlineAndPoolsKeepOrder(t *testing.T) {
	const bursts = 300
	a, b := newPair(t, pairOpts{dualStack: true, engine: EnginePipeline, workers: 2, queue: 64, net: blocking, clock: fakeClock(),
		inlineMax: defaultInlineMax}) // fixed: the spread decision stays out of it
	atB := checkFlows(b, hostB, []host{hostA}, false)
	atA := checkFlows(a, hostA, []host{hostB}, false)
	st := stats(a, b)
	firstPacketEachWay(t, a, b, atA, atB, st)

	// send streams bursts from one end and returns how many packets it
	// sent, or an error.
	type sent struct {
		n   uint32
		err error
	}
	// drained waits until the packets before seq have arrived and both
	// ends count nothing in flight (the collector counts its batch out
	// just after the packets left).
	drained := func(at *flowChecker, seq uint32, from, to *end) bool {
		if !at.reached(0, seq, 5*time.Second) {
			return false
		}
		deadline := time.Now().Add(5 * time.Second)
		for from.tun.inline.out.n.Load() != 0 || to.tun.inline.in.n.Load() != 0 {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Microsecond)
		}
		return true
	}
	send := func(from, to *end, fh, th host, seed uint64, at *flowChecker) <-chan sent {
		res := make(chan sent, 1)
		go func() {
			rng := rand.New(rand.NewPCG(seed, seed))
			seq := uint32(1)
			for i := range bursts {
				n := uint32(1 + rng.IntN(4)) // inline-sized
				if rng.IntN(3) == 0 {
					n = uint32(20 + rng.IntN(150)) // pool-sized
				}
				if err := sendFlows(from, fh, []host{th}, seq, n); err != nil {
					res <- sent{seq, err}
					return
				}
				seq += n
				if i%10 != 9 {
					continue
				}
				// Now and then let the pipeline drain and send a small
				// burst on its own: it goes inline, right after packets
				// that took the pools, and before the next ones do.
				for _, k := range []uint32{0, uint32(1 + rng.IntN(4))} {
					if err := sendFlows(from, fh, []host{th}, seq, k); err != nil {
						res <- sent{seq, err}
						return
					}
					seq += k
					if !drained(at, seq, from, to) {
						_, _, err := at.result(0)
						res <- sent{seq, fmt.Errorf("stalled before seq %d: %v", seq, err)}
						return
					}
				}
			}
			res <- sent{seq, nil}
		}()
		return res
	}
	resAB := send(a, b, hostA, hostB, 1, atB)
	resBA := send(b, a, hostB, hostA, 2, atA)
	for _, x := range []struct {
		res  <-chan sent
		at   *flowChecker
		name string
	}{{resAB, atB, "A to B"}, {resBA, atA, "B to A"}} {
		r := <-x.res
		if r.err != nil {
			t.Fatalf("%s: %v\n%s", x.name, r.err, st())
		}
		x.at.wait(t, 0, r.n, 5*time.Second, st)
		if got, missing, err := x.at.result(0); err != nil || len(missing) > 0 || got != int(r.n) {
			t.Errorf("%s: %d of %d received, missing %v: %v\n%s", x.name, got, r.n, head(missing), err, st())
		}
	}
	for _, e := range []*end{a, b} {
		if d := totalDrops(e.tun.Stats()); d != 0 {
			t.Errorf("%s dropped %d packets\n%s", e.udp, d, st())
		}
		for _, name := range []string{"route-out", "encrypt", "decrypt", "route-in"} {
			all := stageStats(t, e.tun.Stats(), name).Packets
			in := inlineCount(t, e, name)
			if in == 0 || in == all {
				t.Errorf("%s: %s: %d of %d packets inline: want both paths used\n%s", e.udp, name, in, all, st())
			}
		}
		if f := e.tun.inline.out.n.Load(); f != 0 {
			t.Errorf("%s: %d outbound packets counted in flight at rest", e.udp, f)
		}
		if f := e.tun.inline.in.n.Load(); f != 0 {
			t.Errorf("%s: %d inbound packets counted in flight at rest", e.udp, f)
		}
	}
}
