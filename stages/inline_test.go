package stages

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
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

// TestTakeOverKeepsOrder: with queue management on, two pipeline tunnels
// stream four flows each to each other while the spread decision's limit
// flips between inlineAll (the edge stages take their managed queues
// over from the stages after them and work as the sequential engine's
// loop does) and the default (the pools), every millisecond or so. Every
// packet arrives, each flow's in order (the managed queue may reorder
// across flows, on purpose), nothing is dropped, both the edge stages
// and the pools carried packets, and at rest nothing is counted in
// flight.
func TestTakeOverKeepsOrder(t *testing.T) {
	const perFlow, flows = 3000, 4
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2, net: blocking, clock: fakeClock(),
		inlineMax: defaultInlineMax, manage: true, target: lenientTarget, interval: lenientInterval})
	st := stats(a, b)
	// The session first, each way: packets sent before it are staged,
	// and a flood of them overflows the staging queue.
	for _, x := range [][2]*end{{a, b}, {b, a}} {
		x[0].inject(t, ipv4(x[0].addr, x[1].addr, 100, 0))
		x[1].recv(t, 5*time.Second)
	}
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		rng := rand.New(rand.NewPCG(7, 8))
		for {
			for _, e := range []*end{a, b} {
				limit := int64(defaultInlineMax)
				if rng.IntN(2) == 0 {
					limit = inlineAll
				}
				e.tun.inline.max.Store(limit)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+rng.IntN(400)) * time.Microsecond):
			}
		}
	}()
	defer func() {
		close(stop)
		<-flipped
	}()
	// send injects the flows' packets interleaved, in bursts of random
	// size, from src to dst: flow f's packet k is a UDP packet from port
	// 1000+f carrying k.
	send := func(e *end, src, dst netip.Addr, seed uint64) error {
		rng := rand.New(rand.NewPCG(seed, seed))
		var burst [][]byte
		for k := range uint32(perFlow) {
			for f := range uint16(flows) {
				p := ipv4(src, dst, 64+rng.IntN(1200), k)
				binary.BigEndian.PutUint16(p[20:], 1000+f)
				binary.BigEndian.PutUint16(p[22:], 2000)
				burst = append(burst, p)
			}
			if len(burst) >= 1+rng.IntN(200) {
				if err := e.dev.InjectBatch(burst); err != nil {
					return err
				}
				burst = burst[:0]
			}
		}
		return e.dev.InjectBatch(burst)
	}
	// recv checks what e writes to its TUN: each flow's packets in order,
	// all of them.
	recv := func(e *end) error {
		var next [flows]uint32
		for got := 0; got < perFlow*flows; got++ {
			select {
			case p := <-e.dev.Outbound():
				pk := p.Bytes()
				f := binary.BigEndian.Uint16(pk[20:]) - 1000
				if f >= flows {
					return fmt.Errorf("a packet of no flow sent")
				}
				if k := seqOf(pk); k != next[f] {
					return fmt.Errorf("flow %d: packet %d where %d was due", f, k, next[f])
				}
				next[f]++
			case <-time.After(5 * time.Second):
				return fmt.Errorf("stalled after %d of %d packets", got, perFlow*flows)
			}
		}
		return nil
	}
	errs := make(chan error, 4)
	go func() { errs <- send(a, hostA.v4, hostB.v4, 1) }()
	go func() { errs <- send(b, hostB.v4, hostA.v4, 2) }()
	go func() { errs <- recv(b) }()
	go func() { errs <- recv(a) }()
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("%v\n%s", err, st())
		}
	}
	for _, e := range []*end{a, b} {
		if d := totalDrops(e.tun.Stats()); d != 0 {
			t.Errorf("%s dropped %d packets\n%s", e.udp, d, st())
		}
		for _, name := range []string{"encrypt", "decrypt"} {
			all := stageStats(t, e.tun.Stats(), name).Packets
			if in := inlineCount(t, e, name); in == 0 || in == all {
				t.Errorf("%s: %s: %d of %d packets inline: want both paths used\n%s", e.udp, name, in, all, st())
			}
		}
		waitFor(t, 5*time.Second, func() bool { return e.tun.inline.out.n.Load() == 0 && e.tun.inline.in.n.Load() == 0 },
			func() string { return fmt.Sprintf("%s: packets counted in flight at rest", e.udp) })
	}
}
