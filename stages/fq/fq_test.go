package fq

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/stages/codel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pkt is a test packet: its flow and its place in that flow.
type pkt struct {
	flow uint64
	seq  int
	size int
}

var lan = codel.Params{Target: 500 * time.Microsecond, Interval: 5 * time.Millisecond, MTU: 1500, ECN: true}

func newQueue(slots int, manage bool) *Queue[pkt] {
	return New[pkt](Config{Slots: slots, Flows: 1024, Quantum: 1280, Manage: manage, Params: lan})
}

// put commits packets of the given flows and sizes at now; it fails the
// test if the queue has no room.
func put(t testing.TB, q *Queue[pkt], now time.Duration, c codel.Class, ps ...pkt) {
	t.Helper()
	if got := q.TryReserve(len(ps)); got != len(ps) {
		t.Fatalf("reserved %d of %d", got, len(ps))
	}
	for i, p := range ps {
		*q.Reserved(i) = p
		q.Classify(i, p.flow, p.size, c)
	}
	q.Commit(len(ps), now)
}

// bulk returns n packets of flow f, seq from first on, of size bytes.
func bulk(f uint64, first, n, size int) []pkt {
	ps := make([]pkt, n)
	for i := range ps {
		ps[i] = pkt{f, first + i, size}
	}
	return ps
}

// takeAll takes runs until the queue is empty and returns what left, in
// order, with whether each was marked.
func takeAll(q *Queue[pkt], now time.Duration, run int) (out []pkt, marks []bool) {
	for n, _ := q.Take(Consumer, now, run); n > 0; n, _ = q.Take(Consumer, now, run) {
		for i := range q.InHand(Consumer) {
			p, m := q.Hand(i)
			out = append(out, *p)
			marks = append(marks, m)
		}
	}
	return out, marks
}

// TestSparseLeavesFirst: a packet of a sparse flow that arrives behind
// 1000 packets of a bulk flow leaves before them. The bulk flow has been
// sending (it has used its first quantum, so it is an old flow), as a
// bulk transfer has by the time a ping comes along; the sparse flow is new.
func TestSparseLeavesFirst(t *testing.T) {
	for _, manage := range []bool{true, false} {
		q := newQueue(1100, manage)
		put(t, q, 0, codel.NotECT, bulk(1, 0, 1, 1280)...)
		if n, _ := q.Take(Consumer, 0, 1); n != 1 {
			t.Fatal("took nothing")
		}
		put(t, q, 0, codel.NotECT, bulk(1, 1, 1000, 1280)...)
		put(t, q, 0, codel.NotECT, pkt{flow: 2, size: 64})
		out, _ := takeAll(q, 0, 64)
		if len(out) != 1001 {
			t.Fatalf("manage %v: %d packets left, want 1001", manage, len(out))
		}
		if out[0].flow != 2 {
			t.Fatalf("manage %v: the sparse packet left %s", manage, place(out, 2))
		}
	}
}

// TestSparseBehindBurst: when the sparse packet and a burst of a new bulk
// flow arrive together, the bulk flow's first quantum goes first, then the
// sparse packet: it never waits for the burst.
func TestSparseBehindBurst(t *testing.T) {
	q := newQueue(1100, true)
	put(t, q, 0, codel.NotECT, bulk(1, 0, 1000, 1280)...)
	put(t, q, 0, codel.NotECT, pkt{flow: 2, size: 64})
	out, _ := takeAll(q, 0, 128)
	if out[1].flow != 2 {
		t.Fatalf("the sparse packet left %s, want second", place(out, 2))
	}
}

func place(out []pkt, flow uint64) string {
	for i, p := range out {
		if p.flow == flow {
			return fmt.Sprintf("at index %d", i)
		}
	}
	return "never"
}

// TestPerFlowOrder: whatever the mix of flows and sizes, and however the
// consumer takes them, each flow's packets leave in the order they came,
// each exactly once.
func TestPerFlowOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	q := newQueue(512, false)
	next := map[uint64]int{}
	want := map[uint64]int{}
	var got []pkt
	for round := range 2000 {
		n := r.IntN(64) + 1
		if k := q.TryReserve(n); k > 0 {
			for i := range k {
				f := uint64(r.IntN(20))
				if round%7 == 0 {
					f = r.Uint64() // a hash that folds onto a shared flow queue
				}
				p := pkt{f, want[f], 40 + r.IntN(1240)}
				want[f]++
				*q.Reserved(i) = p
				q.Classify(i, p.flow, p.size, codel.NotECT)
			}
			q.Commit(k, time.Duration(round))
		}
		q.Take(Consumer, time.Duration(round), r.IntN(100)+1)
		for i := range q.InHand(Consumer) {
			p, _ := q.Hand(i)
			got = append(got, *p)
		}
	}
	rest, _ := takeAll(q, 0, 1000)
	got = append(got, rest...)
	total := 0
	for _, n := range want {
		total += n
	}
	if len(got) != total {
		t.Fatalf("%d packets left, %d came", len(got), total)
	}
	for _, p := range got {
		if p.seq != next[p.flow] {
			t.Fatalf("flow %d: packet %d left when %d was due", p.flow, p.seq, next[p.flow])
		}
		next[p.flow]++
	}
	if q.Len() != 0 || len(q.free) != q.Cap() {
		t.Fatalf("after draining: Len %d, %d of %d slots free", q.Len(), len(q.free), q.Cap())
	}
}

// TestDeficitRoundRobin: two backlogged flows share by bytes, not by
// packets: a flow of 640-byte packets gets two for each 1280-byte one.
func TestDeficitRoundRobin(t *testing.T) {
	q := newQueue(2000, false)
	put(t, q, 0, codel.NotECT, bulk(1, 0, 900, 1280)...)
	put(t, q, 0, codel.NotECT, bulk(2, 0, 900, 640)...)
	var bytes [3]int
	for range 30 {
		q.Take(Consumer, 0, 30)
		for i := range q.InHand(Consumer) {
			p, _ := q.Hand(i)
			bytes[p.flow] += p.size
		}
	}
	if d := bytes[1] - bytes[2]; d < -1280 || d > 1280 {
		t.Fatalf("bytes out: flow 1 %d, flow 2 %d", bytes[1], bytes[2])
	}
}

// TestStandingQueueDropsOrMarks runs a sender faster than the consumer on
// a fake clock, one that answers congestion as TCP does: it halves its
// rate on a drop or a mark (once per round trip of 1 ms) and otherwise
// grows it by the consumer's rate every 100 round trips. The queue would
// stand at whatever the slots hold; the controller drops (or, for
// ECN-capable packets, marks) and keeps the delay near the target.
func TestStandingQueueDropsOrMarks(t *testing.T) {
	for _, tc := range []struct{ manage, ect bool }{{true, false}, {true, true}, {false, false}} {
		ect := tc.ect
		class := codel.NotECT
		if ect {
			class = codel.ECT
		}
		q := newQueue(4096, tc.manage)
		const (
			step    = 10 * time.Microsecond
			rtt     = time.Millisecond
			consume = 2 // packets per step
		)
		rate, owed := 2.5, 0.0 // packets per step
		seq := 0
		var signals uint64
		var lastCut, maxLate time.Duration
		for now := time.Duration(0); now < 200*lan.Interval; now += step {
			owed += rate
			if n := int(owed); n > 0 {
				k := q.TryReserve(n)
				for i := range k {
					*q.Reserved(i) = pkt{1, seq, 1280}
					q.Classify(i, 1, 1280, class)
					seq++
				}
				q.Commit(k, now)
				owed -= float64(n)
			}
			q.Take(Consumer, now, consume)
			if s := q.stats.drops.Load() + q.stats.marks.Load(); s > signals {
				signals = s
				if now-lastCut >= rtt {
					rate, lastCut = rate/2, now
				}
			} else {
				rate += consume * float64(step) / float64(100*rtt)
			}
			if now > 100*lan.Interval {
				maxLate = max(maxLate, q.sojournOfHead(1, now))
			}
		}
		s := q.Stats()
		t.Logf("managed %v, ECN-capable %v: %d drops, %d marks, delay at the head up to %v", tc.manage, ect, s.Drops, s.Marks, maxLate)
		if !tc.manage {
			// The sender only slows down when the slots run out: the
			// delay the controller removes.
			if maxLate < 20*lan.Target {
				t.Errorf("unmanaged: delay at most %v; the test cannot tell", maxLate)
			}
			continue
		}
		if ect && (s.Marks == 0 || s.Drops != 0) {
			t.Errorf("ECN-capable: %d marks, %d drops; want marks only", s.Marks, s.Drops)
		}
		if !ect && (s.Drops == 0 || s.Marks != 0) {
			t.Errorf("not ECN-capable: %d drops, %d marks; want drops only", s.Drops, s.Marks)
		}
		if maxLate > 4*lan.Target {
			t.Errorf("ECN-capable %v: delay at the head up to %v after 100 intervals, target %v", ect, maxLate, lan.Target)
		}
	}
}

// sojournOfHead is how long the packet at the head of flow has waited at
// now.
func (q *Queue[T]) sojournOfHead(flow uint64, now time.Duration) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f := q.flows[flow&q.mask]; f.head != none {
		return now - q.meta[f.head].arrival
	}
	return 0
}

// TestDrainingQueueNeverDrops: bursts far larger than the target's worth,
// drained before an interval passes, are never dropped from.
func TestDrainingQueueNeverDrops(t *testing.T) {
	q := newQueue(4096, true)
	seq := 0
	for now := time.Duration(0); now < 100*lan.Interval; now += lan.Interval {
		put(t, q, now, codel.NotECT, bulk(1, seq, 1000, 1280)...)
		seq += 1000
		// Drained over 4 ms: most packets wait well above target.
		for k := 1; k <= 10; k++ {
			q.Take(Consumer, now+time.Duration(k)*400*time.Microsecond, 100)
		}
		q.Done(Consumer)
	}
	if s := q.Stats(); s.Drops != 0 || s.Marks != 0 || s.Taken != uint64(seq) {
		t.Fatalf("taken %d of %d, drops %d, marks %d", s.Taken, seq, s.Drops, s.Marks)
	}
}

func TestSojournHistogram(t *testing.T) {
	q := newQueue(16, false)
	put(t, q, 0, codel.NotECT, bulk(1, 0, 3, 100)...)
	q.Take(Consumer, 40*time.Microsecond, 1) // ≤ 50 µs
	q.Take(Consumer, 3*time.Millisecond, 1)  // ≤ 5 ms
	q.Take(Consumer, time.Second, 1)         // beyond every bound
	s := q.Stats()
	want := map[int]uint64{0: 1, 6: 1, numBuckets - 1: 1}
	for i, n := range s.Sojourn.Buckets {
		if n != want[i] {
			t.Errorf("bucket %d: %d, want %d", i, n, want[i])
		}
	}
	if s.Sojourn.Count != 3 || s.Sojourn.Sum != 40*time.Microsecond+3*time.Millisecond+time.Second || s.Taken != 3 {
		t.Errorf("count %d, sum %v, taken %d", s.Sojourn.Count, s.Sojourn.Sum, s.Taken)
	}
}

// TestReserveWaitsForRoom: a producer that needs more slots than are free
// waits until the consumer gives enough back, and stops waiting when done
// closes.
func TestReserveWaitsForRoom(t *testing.T) {
	q := newQueue(8, false)
	put(t, q, 0, codel.NotECT, bulk(1, 0, 6, 100)...)
	got := make(chan bool)
	go func() { got <- q.Reserve(nil, 4) }()
	select {
	case <-got:
		t.Fatal("reserved 4 with 2 free")
	case <-time.After(20 * time.Millisecond):
	}
	q.Take(Consumer, 0, 2)
	q.Done(Consumer)
	if !<-got || q.Reservations() != 4 {
		t.Fatalf("%d reserved after room was made", q.Reservations())
	}
	q.Cancel()

	put(t, q, 0, codel.NotECT, bulk(1, 6, 4, 100)...)
	done := make(chan struct{})
	go func() { got <- q.Reserve(done, 1) }()
	close(done)
	if <-got {
		t.Fatal("Reserve succeeded on a full queue")
	}
}

func TestWaitWakes(t *testing.T) {
	q := newQueue(8, false)
	woke := make(chan bool)
	go func() { woke <- q.Wait(Consumer, nil) }()
	time.Sleep(5 * time.Millisecond)
	put(t, q, 0, codel.NotECT, pkt{flow: 1, size: 1})
	if !<-woke {
		t.Fatal("Wait returned false")
	}
	q.Take(Consumer, 0, 1)
	done := make(chan struct{})
	go func() { woke <- q.Wait(Consumer, done) }()
	close(done)
	if <-woke {
		t.Fatal("Wait returned true on an empty queue")
	}
}

func TestIdle(t *testing.T) {
	q := newQueue(8, false)
	if !q.Idle() {
		t.Fatal("new queue not idle")
	}
	put(t, q, 0, codel.NotECT, pkt{flow: 1, size: 1})
	if q.Idle() {
		t.Fatal("idle with a packet queued")
	}
	q.Take(Consumer, 0, 1)
	if q.Idle() {
		t.Fatal("idle with a packet in hand")
	}
	q.Done(Consumer)
	if !q.Idle() {
		t.Fatal("not idle when empty")
	}
}

func TestNoAllocs(t *testing.T) {
	q := newQueue(256, true)
	now := time.Duration(0)
	if n := testing.AllocsPerRun(200, func() {
		now += 100 * time.Microsecond
		k := q.TryReserve(64)
		for i := range k {
			q.Classify(i, uint64(i%3), 1280, codel.Class(i%2))
		}
		q.Commit(k, now)
		q.Take(Consumer, now, 64)
		q.Done(Consumer)
	}); n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}

func BenchmarkBatch(b *testing.B) {
	q := New[[1408]byte](Config{Slots: 2048, Flows: 1024, Quantum: 1280, Manage: true, Params: lan})
	now := time.Duration(0)
	for b.Loop() {
		now += 100 * time.Microsecond
		k := q.TryReserve(128)
		for i := range k {
			q.Classify(i, uint64(i%4), 1280, codel.NotECT)
		}
		q.Commit(k, now)
		q.Take(Consumer, now, 128)
		q.Done(Consumer)
	}
}

// TestSkip: skipped reservations go back to the free list at Commit, the
// others are queued in order.
func TestSkip(t *testing.T) {
	q := newQueue(8, false)
	q.TryReserve(5)
	for i := range 5 {
		*q.Reserved(i) = pkt{flow: 1, seq: i, size: 1}
		q.Classify(i, 1, 1, codel.NotECT)
	}
	q.Skip(1)
	q.Skip(2)
	q.Commit(4, 0) // the fifth is given back too
	out, _ := takeAll(q, 0, 8)
	if len(out) != 2 || out[0].seq != 0 || out[1].seq != 3 {
		t.Fatalf("queued %v, want seq 0 and 3", out)
	}
	q.Done(Consumer)
	if len(q.free) != q.Cap() {
		t.Fatalf("%d of %d slots free", len(q.free), q.Cap())
	}
	// A fresh reservation is not skipped.
	q.TryReserve(1)
	q.Classify(0, 1, 1, codel.NotECT)
	q.Commit(1, 0)
	if q.Len() != 1 {
		t.Fatal("a reservation after a skipped one was skipped")
	}
}

// TestWaited: a packet that waited before it was read counts that wait
// in its sojourn.
func TestWaited(t *testing.T) {
	q := newQueue(8, false)
	q.TryReserve(2)
	for i := range 2 {
		q.Classify(i, 1, 1, codel.NotECT)
	}
	q.Waited(1, 3*time.Millisecond)
	q.Commit(2, 10*time.Millisecond)
	q.Take(Consumer, 10*time.Millisecond, 2)
	s := q.Stats()
	if s.Sojourn.Sum != 3*time.Millisecond || s.Sojourn.Buckets[0] != 1 || s.Sojourn.Buckets[6] != 1 {
		t.Fatalf("sojourn sum %v, buckets %v", s.Sojourn.Sum, s.Sojourn.Buckets)
	}
	q.Done(Consumer)
	q.TryReserve(1) // a fresh reservation has not waited
	q.Classify(0, 1, 1, codel.NotECT)
	q.Commit(1, 20*time.Millisecond)
	q.Take(Consumer, 20*time.Millisecond, 1)
	if s := q.Stats(); s.Sojourn.Sum != 3*time.Millisecond {
		t.Fatalf("a reused reservation kept its wait: sum %v", s.Sojourn.Sum)
	}
}

// TestClaim: the producer takes over only when the consumer's hand is
// empty, the consumer then takes nothing and waits, and it is woken when
// the queue is handed back.
func TestClaim(t *testing.T) {
	q := newQueue(16, false)
	put(t, q, 0, codel.NotECT, bulk(1, 0, 4, 100)...)
	q.Take(Consumer, 0, 2)
	if q.Claim(Producer) {
		t.Fatal("the producer took over from a consumer with a run in hand")
	}
	q.Done(Consumer)
	if !q.Claim(Producer) {
		t.Fatal("the producer could not take over an idle consumer")
	}
	if n, _ := q.Take(Consumer, 0, 8); n != 0 {
		t.Fatalf("the consumer took %d while the producer was the taker", n)
	}
	q.Done(Consumer) // a restarted consumer tidying: must not touch the producer's hand
	if n, _ := q.Take(Producer, 0, 1); n != 1 || q.InHand(Producer) != 1 || q.InHand(Consumer) != 0 {
		t.Fatalf("producer took %d; in hand: producer %d, consumer %d", n, q.InHand(Producer), q.InHand(Consumer))
	}
	woke := make(chan bool)
	go func() { woke <- q.Wait(Consumer, nil) }()
	select {
	case <-woke:
		t.Fatal("the consumer was woken while the producer was the taker")
	case <-time.After(20 * time.Millisecond):
	}
	q.Done(Producer)
	if !q.Claim(Consumer) {
		t.Fatal("the queue could not be handed back")
	}
	if !<-woke {
		t.Fatal("Wait returned false")
	}
	if n, _ := q.Take(Consumer, 0, 8); n != 1 {
		t.Fatalf("the consumer took %d of the 1 left", n)
	}
}

// TestYield: a taker hands over only a queue it holds nothing of, and a
// busy one only to a producer that is not blocked.
func TestYield(t *testing.T) {
	q := newQueue(16, false)
	if q.Yield(Producer) {
		t.Fatal("the producer yielded what it did not take")
	}
	put(t, q, 0, codel.NotECT, bulk(1, 0, 2, 100)...)
	q.Take(Consumer, 0, 2)
	if q.Yield(Consumer) {
		t.Fatal("yielded with a run in hand")
	}
	q.Done(Consumer)
	if !q.Yield(Consumer) || !q.Taking(Producer) || q.Taking(Consumer) {
		t.Fatal("an idle consumer could not hand over")
	}
	if !q.Yield(Producer) {
		t.Fatal("the producer could not hand back")
	}
	// A busy queue goes to a producer that is not blocked, never to one
	// that is; and a producer that is the taker of a busy queue is told
	// not to block.
	put(t, q, 0, codel.NotECT, bulk(1, 2, 2, 100)...)
	if !q.Blocking() {
		t.Fatal("the producer may not block while the consumer takes")
	}
	if q.Yield(Consumer) {
		t.Fatal("a busy queue went to a blocked producer")
	}
	q.Unblocked()
	if !q.Yield(Consumer) {
		t.Fatal("a busy queue did not go to a producer that is not blocked")
	}
	if q.Blocking() {
		t.Fatal("the producer, taker of a busy queue, was let block")
	}
	q.Take(Producer, 0, 8)
	if q.Yield(Producer) || !q.Taking(Producer) {
		t.Fatal("the producer handed back with a run in hand")
	}
	q.Done(Producer)
	if !q.Yield(Producer) || !q.Taking(Consumer) {
		t.Fatal("the producer could not hand back")
	}
}

// TestSparedNeverDropped: in one flow of bulk packets and small spared
// ones (an inbound queue, where a peer's packets are one flow), a
// standing queue gets drops, all of them on the bulk packets, and what
// leaves keeps its order.
func TestSparedNeverDropped(t *testing.T) {
	q := newQueue(4096, true)
	const n = 3000
	if got := q.TryReserve(n); got != n {
		t.Fatalf("reserved %d of %d", got, n)
	}
	for i := range n {
		p, c := pkt{1, i, 1280}, codel.NotECT
		if i%4 == 0 {
			p.size, c = 100, codel.Spared
		}
		*q.Reserved(i) = p
		q.Classify(i, p.flow, p.size, c)
	}
	q.Commit(n, 0)
	var out []pkt
	for now := time.Duration(0); q.Len() > 0; now += 20 * time.Microsecond {
		got, _ := takeAll1(q, now)
		out = append(out, got...)
	}
	small := 0
	for i, p := range out {
		if i > 0 && p.seq <= out[i-1].seq {
			t.Fatalf("packet %d left after %d", p.seq, out[i-1].seq)
		}
		if p.size == 100 {
			small++
		}
	}
	if s := q.Stats(); s.Drops == 0 || small != n/4 || len(out)+int(s.Drops) != n {
		t.Fatalf("%d drops, %d of %d small packets and %d in all left", s.Drops, small, n/4, len(out))
	}
}

// takeAll1 takes one packet (after any dropped before it) at now.
func takeAll1(q *Queue[pkt], now time.Duration) (out []pkt, dropped int) {
	_, dropped = q.Take(Consumer, now, 1)
	for i := range q.InHand(Consumer) {
		p, _ := q.Hand(i)
		out = append(out, *p)
	}
	return out, dropped
}

// TestSparseNotDroppedWhileConsumerLate: when the consumer comes late
// every time (a goroutine held off by a busy CPU), every packet has
// waited above target, the sparse flow's as well; only the bulk flow,
// which has a queue standing behind its head, gets drops.
func TestSparseNotDroppedWhileConsumerLate(t *testing.T) {
	q := newQueue(4096, true)
	late := 4 * lan.Target
	sparse, seq := 0, 0
	for now := time.Duration(0); now < 100*lan.Interval; now += lan.Interval {
		put(t, q, now, codel.NotECT, bulk(1, seq, 20, 1280)...)
		put(t, q, now, codel.NotECT, pkt{flow: 2, seq: sparse, size: 84})
		seq += 20
		// The consumer, late, takes less than came: a standing queue.
		got := false
		for range 16 {
			out, _ := takeAll1(q, now+late)
			for _, p := range out {
				got = got || p.flow == 2
			}
		}
		if !got {
			t.Fatalf("sparse packet %d dropped", sparse)
		}
		sparse++
	}
	if s := q.Stats(); s.Drops == 0 {
		t.Fatal("the bulk flow's standing queue got no drops")
	}
}

// TestMaxOvertake: with MaxOvertake set, no packet leaves after more than
// MaxOvertake-1 packets that arrived after it, however flows come and go;
// without it, a packet of an old flow waits while new flows keep coming
// (each served first), overtaken by as many as there are. Packets carry
// their order of arrival in seq; flows are random, most of them new.
func TestMaxOvertake(t *testing.T) {
	const bound = 64
	run := func(maxOvertake int) (worst int) {
		q := New[pkt](Config{Slots: 4096, Flows: 1024, Quantum: 1280, MaxOvertake: maxOvertake})
		rng := rand.New(rand.NewPCG(3, 4))
		arrived, left := 0, map[int]bool{}
		check := func(out []pkt) {
			for _, p := range out {
				// Packets that arrived after p and left before it.
				n := 0
				for later := p.seq + 1; later < arrived; later++ {
					if left[later] {
						n++
					}
				}
				worst = max(worst, n)
				left[p.seq] = true
			}
		}
		// An old flow with a backlog: flow 0, served once so it is old.
		put(t, q, 0, codel.NotECT, pkt{0, arrived, 1280}, pkt{0, arrived + 1, 1280})
		arrived += 2
		for range 2000 {
			k := 1 + rng.IntN(8)
			ps := make([]pkt, k)
			for i := range ps {
				flow := uint64(1 + rng.IntN(100000)) // almost always a new flow
				if rng.IntN(10) == 0 {
					flow = 0
				}
				ps[i] = pkt{flow, arrived, 100}
				arrived++
			}
			put(t, q, 0, codel.NotECT, ps...)
			n, _ := q.Take(Consumer, 0, max(1, k-1+rng.IntN(2)))
			out := make([]pkt, 0, n)
			for i := range n {
				p, _ := q.Hand(i)
				out = append(out, *p)
			}
			q.Done(Consumer)
			check(out)
		}
		out, _ := takeAll(q, 0, 16)
		check(out)
		if len(left) != arrived {
			t.Fatalf("MaxOvertake %d: %d of %d packets left", maxOvertake, len(left), arrived)
		}
		return worst
	}
	if worst := run(bound); worst >= bound {
		t.Errorf("MaxOvertake %d: a packet was overtaken by %d", bound, worst)
	}
	if worst := run(0); worst < 10*bound {
		t.Errorf("without MaxOvertake the worst overtaking was %d: the test does not starve an old flow", worst)
	}
}
