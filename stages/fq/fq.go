// Package fq is the tunnel's managed queue: the one place per direction
// where packets may wait in numbers. It holds them in preallocated slots,
// sorts them into flow queues by a hash the producer gives, serves the
// flows by deficit round robin with new (sparse) flows first, and runs a
// CoDel controller (package codel) on each flow at its head: the ideas of
// Linux's sch_fq_codel (RFC 8290). A ping, a DNS query or a TCP ACK thus
// leaves ahead of a bulk flow's backlog, and a bulk flow's backlog is
// kept near the target delay by drops or ECN marks.
//
// Unlike sch_fq_codel, the controller weighs a flow's own backlog, not
// the whole queue's, when it asks whether a queue stands: a packet that
// leaves its flow with less than a full packet behind it is never
// dropped. In the kernel a sparse flow's packet leaves at once; here the
// consumer is a goroutine that the scheduler may hold off for
// milliseconds while the CPU is busy, and then every packet, a ping's as
// well as a bulk segment's, has waited that long. With the whole queue's
// backlog, a ping every interval would be dropped as if it stood in a
// queue of its own.
//
// Per-flow order holds: each flow is FIFO. Order across flows changes,
// on purpose.
//
// One producer and one consumer, which may be different goroutines. The
// producer reserves slots (Reserve, TryReserve), fills them in place
// (Reserved, Classify) and commits them with the time they arrived
// (Commit); the consumer takes runs of packets in the order they are to
// leave (Take), works on them in their slots (Hand) and gives the slots
// back (Done). The producer may take the consumer's part over for a
// while (Claim): one taker at a time. A slot belongs to exactly one of:
// the free list, the producer's reservations, a flow queue, the taker's
// hand. A mutex guards the queue's structure, taken once per call, so
// once per batch.
//
// When every slot is taken, the producer waits (Reserve) or gets none
// (TryReserve): the queue never grows, and the kernel's queue in front of
// the producer takes the overflow, as a network would.
package fq

import (
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/stages/codel"
)

// Config is a queue's shape and policy.
type Config struct {
	// Slots is how many packets the queue holds at most.
	Slots int
	// Flows is how many flow queues packets are hashed into (rounded up
	// to a power of two); 1 makes one FIFO.
	Flows int
	// Quantum is the bytes a flow may send per round of the deficit
	// round robin: about one full packet, so that flows of small
	// packets (ACKs) get as many packets out per round as they need.
	Quantum int
	// Manage runs CoDel (with Params) on each flow; without it the queue
	// only ever fills.
	Manage bool
	Params codel.Params
	// MaxOvertake, if positive, bounds how many packets that arrived
	// after a packet may arrive before it leaves: once that many have,
	// it leaves next, ahead of every flow's turn. It keeps a sequence
	// the packets carry (a replay window's counters, which a receiver
	// accepts only so far behind the newest) from stretching without
	// bound, as it could when new flows, always served first, keep
	// coming. Zero: no bound.
	MaxOvertake int
}

// none is the empty index of a slot or flow list.
const none = -1

// slotMeta is what the queue knows of a packet besides its value.
type slotMeta struct {
	next    int32         // the next packet in its flow
	flow    int32         // its flow queue
	size    int32         // bytes, for the deficit and the backlog
	class   codel.Class   // how the controller may act on it
	arrival time.Duration // when the producer committed it
	// With MaxOvertake: the packet's place in the order of arrival, and
	// its neighbours in the list of every queued packet in that order.
	seq          uint64
	older, newer int32
}

// flowQueue is one flow's FIFO and its place in the round robin. Its
// CoDel state outlives its packets, as fq_codel's does: a flow that goes
// idle and comes back soon resumes its drop rate.
type flowQueue struct {
	head, tail int32
	next       int32 // the next flow in the list it is on
	deficit    int32
	backlog    int32 // bytes of its packets queued
	on         uint8 // which list it is on: offList, onNew, onOld
	codel      codel.State
}

const (
	offList = iota
	onNew
	onOld
)

type flowList struct{ head, tail int32 }

// Queue is a managed queue of T values. Make one with New; the zero value
// is not usable. Its concurrency rules are in the package comment.
type Queue[T any] struct {
	slots []T
	cfg   Config
	mask  uint64 // len(flows)-1

	mu       sync.Mutex // guards the fields up to the producer's
	meta     []slotMeta
	free     []int32 // a stack: the slot freed last, warm in cache, goes out first
	flows    []flowQueue
	newFlows flowList
	oldFlows flowList
	queued   int // packets in flow queues
	// With MaxOvertake: how many packets were ever queued, and the
	// oldest and newest of those queued now (a list through slotMeta).
	arrivals          uint64
	oldest, newest    int32
	producerWaiting   bool
	producerBlocked   bool // between Blocking and Unblocked
	wantFree          int  // slots the waiting producer needs
	consumerWaiting   bool
	taker             Taker         // who may take; its hand below is its own
	notEmpty, notFull chan struct{} // capacity 1: a token means "look again"

	// busy is queued plus the consumer's hand, published under mu for
	// readers that take no lock (Idle, Len).
	busy atomic.Int64

	_ [64]byte
	// Producer-private.
	res    []int32         // reserved slots, in order
	skip   []bool          // per reservation: give it back at Commit rather than queue it
	waited []time.Duration // per reservation: how long it waited before it was read

	_ [64]byte
	// The taker's (see Claim).
	hand   []int32
	marked []bool
	acct   counts // not yet published

	stats published
}

// New returns an empty queue shaped by cfg.
func New[T any](cfg Config) *Queue[T] {
	cfg.Slots = max(cfg.Slots, 1)
	cfg.Quantum = max(cfg.Quantum, 1)
	nf := 1
	for nf < cfg.Flows {
		nf <<= 1
	}
	q := &Queue[T]{
		slots:    make([]T, cfg.Slots),
		cfg:      cfg,
		mask:     uint64(nf - 1),
		meta:     make([]slotMeta, cfg.Slots),
		free:     make([]int32, cfg.Slots),
		flows:    make([]flowQueue, nf),
		newFlows: flowList{none, none},
		oldFlows: flowList{none, none},
		oldest:   none,
		newest:   none,
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}, 1),
		res:      make([]int32, 0, cfg.Slots),
		skip:     make([]bool, 0, cfg.Slots),
		waited:   make([]time.Duration, 0, cfg.Slots),
		hand:     make([]int32, 0, cfg.Slots),
		marked:   make([]bool, 0, cfg.Slots),
	}
	for i := range q.free {
		q.free[i] = int32(cfg.Slots - 1 - i) // slot 0 on top
	}
	for i := range q.flows {
		q.flows[i].head, q.flows[i].tail, q.flows[i].next = none, none, none
	}
	return q
}

// Cap is how many packets the queue holds at most.
func (q *Queue[T]) Cap() int { return q.cfg.Slots }

// Len is how many packets are queued or in the consumer's hand: a
// snapshot, safe from any goroutine.
func (q *Queue[T]) Len() int { return int(q.busy.Load()) }

// Idle reports whether the queue holds nothing and the consumer has
// nothing in hand. The producer may use it to decide that what it reads
// now cannot overtake anything it committed before.
func (q *Queue[T]) Idle() bool { return q.busy.Load() == 0 }

// Producer side.

// TryReserve reserves up to n free slots, without waiting, and returns
// how many it reserved; Reserved(i) gives their values.
func (q *Queue[T]) TryReserve(n int) int {
	q.mu.Lock()
	k := q.reserveLocked(n)
	q.mu.Unlock()
	return k
}

// Reserve reserves n free slots (n ≤ Cap minus those already reserved),
// waiting until there are that many. It returns false, having reserved
// nothing more, once done is closed.
func (q *Queue[T]) Reserve(done <-chan struct{}, n int) bool {
	for {
		q.mu.Lock()
		if len(q.free) >= n {
			q.reserveLocked(n)
			q.producerWaiting = false
			q.mu.Unlock()
			return true
		}
		q.producerWaiting, q.wantFree = true, n
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-done:
			q.mu.Lock()
			q.producerWaiting = false
			q.mu.Unlock()
			return false
		}
	}
}

func (q *Queue[T]) reserveLocked(n int) int {
	k := min(n, len(q.free))
	top := len(q.free) - k
	for i := len(q.free) - 1; i >= top; i-- {
		q.res = append(q.res, q.free[i])
		q.skip = append(q.skip, false)
		q.waited = append(q.waited, 0)
	}
	q.free = q.free[:top]
	return k
}

// Reservations is how many slots the producer holds reserved.
func (q *Queue[T]) Reservations() int { return len(q.res) }

// Reserved is the i-th reserved slot's value, for the producer to fill.
func (q *Queue[T]) Reserved(i int) *T { return &q.slots[q.res[i]] }

// Classify says what the i-th reserved slot holds: the hash of its flow,
// its size in bytes and how the controller may act on it (drop, mark or
// spare it). Every slot committed must have been classified since it was
// reserved.
func (q *Queue[T]) Classify(i int, flow uint64, size int, c codel.Class) {
	m := &q.meta[q.res[i]]
	m.flow, m.size, m.class = int32(flow&q.mask), int32(size), c
}

// Waited says that the packet in the i-th reserved slot had waited d
// before the producer read it (in a socket's buffer, say): its time in
// the queue counts from then.
func (q *Queue[T]) Waited(i int, d time.Duration) { q.waited[i] = d }

// Skip marks the i-th reserved slot as holding nothing to queue (a packet
// the producer dropped, or handed elsewhere): Commit gives it back.
func (q *Queue[T]) Skip(i int) { q.skip[i] = true }

// Commit queues the first k reserved slots but the skipped ones, in
// order, as having arrived at now, and gives the rest of the reservations
// back.
func (q *Queue[T]) Commit(k int, now time.Duration) {
	q.mu.Lock()
	for i, s := range q.res[:k] {
		if q.skip[i] {
			q.free = append(q.free, s)
			continue
		}
		q.enqueueLocked(s, now-q.waited[i])
	}
	q.freeLocked(q.res[k:])
	q.res, q.skip, q.waited = q.res[:0], q.skip[:0], q.waited[:0]
	q.busy.Store(int64(q.queued + len(q.hand)))
	wake := q.consumerWaiting && q.queued > 0 && q.taker == Consumer
	q.mu.Unlock()
	if wake {
		signal(q.notEmpty)
	}
}

// Cancel gives back every reserved slot: a restarted producer tidies
// what its predecessor held.
func (q *Queue[T]) Cancel() {
	if len(q.res) == 0 {
		return
	}
	q.mu.Lock()
	q.freeLocked(q.res)
	q.res, q.skip, q.waited = q.res[:0], q.skip[:0], q.waited[:0]
	q.mu.Unlock()
}

func (q *Queue[T]) enqueueLocked(s int32, now time.Duration) {
	m := &q.meta[s]
	m.next, m.arrival = none, now
	if q.cfg.MaxOvertake > 0 {
		q.arrivals++
		m.seq, m.older, m.newer = q.arrivals, q.newest, none
		if q.newest == none {
			q.oldest = s
		} else {
			q.meta[q.newest].newer = s
		}
		q.newest = s
	}
	f := &q.flows[m.flow]
	if f.tail == none {
		f.head = s
	} else {
		q.meta[f.tail].next = s
	}
	f.tail = s
	q.queued++
	f.backlog += m.size
	if f.on == offList {
		// A flow with nothing queued and not in the round robin is new:
		// it is served before the old flows, with a full quantum.
		f.deficit = int32(q.cfg.Quantum)
		q.push(&q.newFlows, m.flow, onNew)
	}
}

// freeLocked puts slots back on the free list and wakes a producer
// waiting for as many.
func (q *Queue[T]) freeLocked(ss []int32) {
	q.free = append(q.free, ss...)
	if q.producerWaiting && len(q.free) >= q.wantFree {
		q.producerWaiting = false
		signal(q.notFull)
	}
}

// Consumer side.

// Taker names who takes packets from the queue: its consumer, or its
// producer when it takes over (Claim). One at a time: the taker's hand
// is its own.
type Taker uint8

// The two takers. A new queue's taker is its consumer.
const (
	Consumer Taker = iota
	Producer
)

// Claim makes by the queue's taker and reports whether it is: it becomes
// so when the taker before it has nothing in hand (it finished its run).
// A consumer waiting in Wait is woken if it became the taker.
//
// A producer that reads from a device and has spare time takes over so
// that it can work on its packets itself, without the hand-off to the
// consumer, and hands the queue back once it has no spare time; the
// consumer meanwhile waits.
func (q *Queue[T]) Claim(by Taker) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.taker == by {
		return true
	}
	if len(q.hand) > 0 {
		return false
	}
	q.taker = by
	if by == Consumer && q.consumerWaiting {
		signal(q.notEmpty)
	}
	return true
}

// Yield hands the taker's part from by to the other taker, if by is the
// taker and has nothing in hand, and reports whether it did. A queue with
// packets queued goes to the producer only while it is not blocked (in a
// read: Blocking, or waiting for room): they would wait for it.
func (q *Queue[T]) Yield(by Taker) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.taker != by || len(q.hand) > 0 {
		return false
	}
	if by == Consumer && q.queued > 0 && (q.producerBlocked || q.producerWaiting) {
		return false
	}
	q.taker = Producer
	if by == Producer {
		q.taker = Consumer
	}
	return true
}

// Blocking is what the producer calls before it blocks elsewhere (in a
// read): it reports false, and the producer must not block, when it is
// the taker and packets are queued, which only it would take. Otherwise
// the queue is not handed to it until it calls Unblocked.
func (q *Queue[T]) Blocking() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.taker == Producer && q.queued > 0 {
		return false
	}
	q.producerBlocked = true
	return true
}

// Unblocked ends Blocking.
func (q *Queue[T]) Unblocked() {
	q.mu.Lock()
	q.producerBlocked = false
	q.mu.Unlock()
}

// Taking reports whether by is the taker now.
func (q *Queue[T]) Taking(by Taker) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.taker == by
}

// Wait waits until a packet is queued and by is the taker; false once
// done is closed.
func (q *Queue[T]) Wait(by Taker, done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.queued > 0 && q.taker == by {
			q.consumerWaiting = false
			q.mu.Unlock()
			return true
		}
		q.consumerWaiting = by == Consumer
		q.mu.Unlock()
		select {
		case <-q.notEmpty:
		case <-done:
			q.mu.Lock()
			q.consumerWaiting = false
			q.mu.Unlock()
			return false
		}
	}
}

// Take gives back the slots of the last run (as Done) and takes the next
// run of up to max packets, in the order they are to leave, at now: the
// flows in turn, sparse ones first, each run past its CoDel controller,
// which may drop packets (their slots go straight back) or mark them. It
// returns how many packets the run holds (Hand(i) gives each) and how
// many the controller dropped on the way. It does not wait: 0 taken and
// 0 dropped means nothing is queued, or by is not the taker.
func (q *Queue[T]) Take(by Taker, now time.Duration, max int) (taken, dropped int) {
	q.mu.Lock()
	if q.taker != by {
		q.mu.Unlock()
		return 0, 0
	}
	q.doneLocked()
	before := q.acct.drops
	for len(q.hand) < max {
		s, mark, ok := q.dequeueLocked(now)
		if !ok {
			break
		}
		q.hand = append(q.hand, s)
		q.marked = append(q.marked, mark)
	}
	q.busy.Store(int64(q.queued + len(q.hand)))
	if q.producerWaiting && len(q.free) >= q.wantFree {
		// Slots the controller dropped.
		q.producerWaiting = false
		signal(q.notFull)
	}
	dropped = int(q.acct.drops - before)
	q.publish()
	q.mu.Unlock()
	return len(q.hand), dropped
}

// Hand is the i-th packet of the run the taker took, and whether the
// controller marked it: then the taker sets CE on it (it was classified
// ECN-capable) and sends it on.
func (q *Queue[T]) Hand(i int) (p *T, mark bool) { return &q.slots[q.hand[i]], q.marked[i] }

// InHand is how many packets by holds from its last Take: after a
// restart, the ones its predecessor was working on; 0 if by is not the
// taker.
func (q *Queue[T]) InHand(by Taker) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.taker != by {
		return 0
	}
	return len(q.hand)
}

// Done gives back the slots of by's run in hand, if by is the taker.
func (q *Queue[T]) Done(by Taker) {
	q.mu.Lock()
	if q.taker == by && len(q.hand) > 0 {
		q.doneLocked()
		q.busy.Store(int64(q.queued))
	}
	q.mu.Unlock()
}

func (q *Queue[T]) doneLocked() {
	q.freeLocked(q.hand)
	q.hand, q.marked = q.hand[:0], q.marked[:0]
}

// dequeueLocked is fq_codel's dequeue: the first flow of the new list,
// else of the old; a flow whose deficit is spent goes to the back of the
// old list with another quantum; a flow found empty leaves the round
// robin (a new one goes to the old list first if other flows wait, so
// that it cannot stay "new" by emptying at once, and starve them).
func (q *Queue[T]) dequeueLocked(now time.Duration) (slot int32, mark, ok bool) {
	for q.cfg.MaxOvertake > 0 && q.oldest != none && q.arrivals-q.meta[q.oldest].seq >= uint64(q.cfg.MaxOvertake) {
		// Overdue: the oldest packet is its flow's head (each flow is
		// FIFO), and leaves now, charged to its flow's deficit. If the
		// controller drops it, the next oldest is looked at.
		f := &q.flows[q.meta[q.oldest].flow]
		if s, mark, ok := q.headLocked(f, now); ok {
			f.deficit -= q.meta[s].size
			return s, mark, true
		}
	}
	for {
		list, on := &q.newFlows, uint8(onNew)
		if list.head == none {
			list, on = &q.oldFlows, onOld
			if list.head == none {
				return none, false, false
			}
		}
		fi := list.head
		f := &q.flows[fi]
		if f.deficit <= 0 {
			f.deficit += int32(q.cfg.Quantum)
			q.pop(list)
			q.push(&q.oldFlows, fi, onOld)
			continue
		}
		s, mark, ok := q.headLocked(f, now)
		if !ok {
			q.pop(list)
			if on == onNew && q.oldFlows.head != none {
				q.push(&q.oldFlows, fi, onOld)
			} else {
				f.on = offList
			}
			continue
		}
		f.deficit -= q.meta[s].size
		return s, mark, true
	}
}

// headLocked takes the packet at the head of flow f that its controller
// lets through, dropping the ones it does not.
func (q *Queue[T]) headLocked(f *flowQueue, now time.Duration) (slot int32, mark, ok bool) {
	for f.head != none {
		s := f.head
		m := &q.meta[s]
		f.head = m.next
		if f.head == none {
			f.tail = none
		}
		q.queued--
		f.backlog -= m.size
		if q.cfg.MaxOvertake > 0 {
			q.unlinkArrival(s)
		}
		sojourn := now - m.arrival
		q.acct.sojourn(sojourn)
		v := codel.Deliver
		if q.cfg.Manage {
			v = f.codel.Decide(&q.cfg.Params, now, sojourn, int(f.backlog), m.class)
		}
		switch v {
		case codel.Drop:
			q.acct.drops++
			q.free = append(q.free, s)
			continue
		case codel.Mark:
			q.acct.marks++
		}
		q.acct.taken++
		return s, v == codel.Mark, true
	}
	return none, false, false
}

// unlinkArrival takes slot s out of the list of queued packets in order
// of arrival.
func (q *Queue[T]) unlinkArrival(s int32) {
	m := &q.meta[s]
	if m.older == none {
		q.oldest = m.newer
	} else {
		q.meta[m.older].newer = m.newer
	}
	if m.newer == none {
		q.newest = m.older
	} else {
		q.meta[m.newer].older = m.older
	}
	m.older, m.newer = none, none
}

func (q *Queue[T]) push(l *flowList, fi int32, on uint8) {
	f := &q.flows[fi]
	f.next, f.on = none, on
	if l.tail == none {
		l.head = fi
	} else {
		q.flows[l.tail].next = fi
	}
	l.tail = fi
}

func (q *Queue[T]) pop(l *flowList) {
	f := &q.flows[l.head]
	l.head = f.next
	if l.head == none {
		l.tail = none
	}
	f.next = none
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
