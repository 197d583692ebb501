// Package spsc is the bounded, typed channel that joins two pipeline
// stages: a FIFO of values of type T stored in place, in one preallocated
// array of slots, between exactly one producer and one consumer.
//
// It exists because Go channels are too dear for 1.3 KB packets: a channel
// copies every value twice (into its buffer and out again) and takes a lock
// per operation that both ends contend for. Measured on a 2-core machine,
// three such hops per direction cost about half as much CPU as the
// ChaCha20-Poly1305 work itself. Here a value is copied once per hop: the
// producer writes it into a slot it reserved, the consumer works on it in
// that slot and, when it hands the packet on, copies it into the next
// stage's queue (or lets the AEAD write its output there). Ownership of a
// slot passes with its position, never by reference: the producer owns a
// slot from Reserve until Commit, the consumer from Next until Done. No two
// stages ever use one slot at the same time.
//
// Positions are published in groups (every flushEvery values, and always
// before either end waits), so the two ends touch the shared indices about
// once per group rather than once per value.
//
// Concurrency: one goroutine may produce and one consume at a time. A stage
// restarted by its supervisor takes over its end from the stage that
// panicked: Cancel and InHand let it tidy what that stage left.
//
// The zero value is not usable; make one with New.
package spsc

import (
	"sync/atomic"
)

// cacheLine keeps fields written by different ends off each other's cache
// lines. 64 bytes on amd64 and arm64; twice that covers adjacent-line
// prefetching.
type cacheLine [128]byte

// Queue is a bounded single-producer, single-consumer FIFO of T values.
type Queue[T any] struct {
	slots      []T
	mask       uint64 // len(slots)-1; len(slots) is a power of two
	capacity   uint64 // values it holds at most; ≤ len(slots)
	flushEvery uint64
	wakeRoom   uint64 // free slots that make Release wake a waiting producer

	_    cacheLine
	tail atomic.Uint64 // published by the producer: values below it are readable
	_    cacheLine
	head atomic.Uint64 // published by the consumer: slots below it are free
	_    cacheLine

	// consumerWaiting and producerWaiting are set by an end before it parks
	// and re-checks; the other end, after publishing, wakes it if set.
	// Go's atomics are sequentially consistent, so either the waiter sees
	// the new position or the publisher sees the flag.
	consumerWaiting atomic.Bool
	producerWaiting atomic.Bool
	notEmpty        chan struct{} // capacity 1: a token means "look again"
	notFull         chan struct{}
	_               cacheLine

	// Producer-private.
	reserved   uint64 // next slot Reserve hands out
	committed  uint64 // values below it are complete; published up to tail
	cachedHead uint64
	_          cacheLine

	// Consumer-private.
	taken      uint64 // next value Next hands out
	finished   uint64 // values below it are done with; published up to head
	cachedTail uint64
	_          cacheLine
}

// maxFlushEvery bounds how many values an end holds back before it
// publishes: enough to spread the cost of touching the shared index, few
// enough that the other end never waits long for work it could do.
const maxFlushEvery = 32

// New returns a queue that holds at most capacity values; capacity must be
// at least 1.
func New[T any](capacity int) *Queue[T] {
	if capacity < 1 {
		panic("spsc: capacity must be at least 1")
	}
	n := 1
	for n < capacity {
		n <<= 1
	}
	return &Queue[T]{
		slots:      make([]T, n),
		mask:       uint64(n - 1),
		capacity:   uint64(capacity),
		flushEvery: uint64(min(max(capacity/8, 1), maxFlushEvery)),
		wakeRoom:   uint64(max(capacity/2, 1)),
		notEmpty:   make(chan struct{}, 1),
		notFull:    make(chan struct{}, 1),
	}
}

// Cap is the most values the queue holds.
func (q *Queue[T]) Cap() int { return int(q.capacity) }

// Len is the number of values published and not yet released: a snapshot
// for statistics, safe from any goroutine.
func (q *Queue[T]) Len() int {
	h := q.head.Load()
	t := q.tail.Load()
	if t < h {
		return 0 // read across an update
	}
	return int(t - h)
}

// Released is how many values the consumer has released so far: a count
// that only grows, as published (every few values, and always before the
// consumer waits). With Len it tells a stalled consumer (values waiting,
// Released unchanged) from an idle one (nothing waiting). Safe from any
// goroutine; it costs the ends nothing.
func (q *Queue[T]) Released() uint64 { return q.head.Load() }

// Reserve returns the next free slot for the producer to fill, waiting
// while the queue is full (after publishing what was committed, so the
// consumer can make room). It returns false once done is closed. The slot
// holds whatever value it last held. Reserve may be called again before
// Commit, also when it has to wait, as long as the reservations never
// exceed Cap: a waiting producer is woken at the latest when the consumer
// has drained the queue, and then there is room for one more.
func (q *Queue[T]) Reserve(done <-chan struct{}) (*T, bool) {
	if q.reserved-q.cachedHead >= q.capacity {
		if !q.waitNotFull(done) {
			return nil, false
		}
	}
	p := &q.slots[q.reserved&q.mask]
	q.reserved++
	return p, true
}

// TryReserve is Reserve without waiting: nil when the queue is full.
func (q *Queue[T]) TryReserve() *T {
	if q.reserved-q.cachedHead >= q.capacity {
		q.cachedHead = q.head.Load()
		if q.reserved-q.cachedHead >= q.capacity {
			return nil
		}
	}
	p := &q.slots[q.reserved&q.mask]
	q.reserved++
	return p
}

func (q *Queue[T]) waitNotFull(done <-chan struct{}) bool {
	for {
		q.cachedHead = q.head.Load()
		if q.reserved-q.cachedHead < q.capacity {
			return true
		}
		q.Flush()
		q.producerWaiting.Store(true)
		q.cachedHead = q.head.Load()
		if q.reserved-q.cachedHead < q.capacity {
			q.producerWaiting.Store(false)
			return true
		}
		select {
		case <-q.notFull:
		case <-done:
			q.producerWaiting.Store(false)
			return false
		}
		q.producerWaiting.Store(false)
	}
}

// Commit makes every reserved slot a value in the queue, in the order
// reserved. The consumer sees them once they are published: every
// flushEvery values, on Flush, or when the producer waits.
func (q *Queue[T]) Commit() {
	q.committed = q.reserved
	if q.committed-q.tail.Load() >= q.flushEvery {
		q.Flush()
	}
}

// CommitFirst commits the first n reserved slots and cancels the rest.
func (q *Queue[T]) CommitFirst(n int) {
	q.reserved = q.committed + uint64(n)
	q.Commit()
}

// Cancel gives back the slots reserved since the last Commit.
func (q *Queue[T]) Cancel() { q.reserved = q.committed }

// Flush publishes the committed values now and wakes a waiting consumer.
// A producer calls it before it waits for anything else (its own input, a
// system call), so that nothing it made sits unseen.
func (q *Queue[T]) Flush() {
	if q.tail.Load() == q.committed {
		return
	}
	q.tail.Store(q.committed)
	if q.consumerWaiting.Load() {
		select {
		case q.notEmpty <- struct{}{}:
		default:
		}
	}
}

// Next returns the next value for the consumer, in place, waiting while
// the queue is empty (after releasing the slots of values marked Done, so
// the producer can refill them). It returns false once done is closed. The
// value is the consumer's until Done.
func (q *Queue[T]) Next(done <-chan struct{}) (*T, bool) {
	if q.taken == q.cachedTail {
		q.cachedTail = q.tail.Load()
		if q.taken == q.cachedTail && !q.waitNotEmpty(done) {
			return nil, false
		}
	}
	p := &q.slots[q.taken&q.mask]
	q.taken++
	return p, true
}

// TryNext is Next without waiting: nil when no value is published.
func (q *Queue[T]) TryNext() *T {
	if q.taken == q.cachedTail {
		q.cachedTail = q.tail.Load()
		if q.taken == q.cachedTail {
			return nil
		}
	}
	p := &q.slots[q.taken&q.mask]
	q.taken++
	return p
}

// Pending reports whether a published value is waiting to be taken,
// without taking it.
func (q *Queue[T]) Pending() bool {
	if q.taken != q.cachedTail {
		return true
	}
	q.cachedTail = q.tail.Load()
	return q.taken != q.cachedTail
}

func (q *Queue[T]) waitNotEmpty(done <-chan struct{}) bool {
	for {
		q.Release()
		q.consumerWaiting.Store(true)
		q.cachedTail = q.tail.Load()
		if q.taken != q.cachedTail {
			q.consumerWaiting.Store(false)
			return true
		}
		select {
		case <-q.notEmpty:
		case <-done:
			q.consumerWaiting.Store(false)
			return false
		}
		q.consumerWaiting.Store(false)
		q.cachedTail = q.tail.Load()
		if q.taken != q.cachedTail {
			return true
		}
	}
}

// Done marks every value taken so far as finished with; their slots go
// back to the producer when published: every flushEvery values, on
// Release, or when the consumer waits.
func (q *Queue[T]) Done() {
	q.finished = q.taken
	if q.finished-q.head.Load() >= q.flushEvery {
		q.Release()
	}
}

// InHand is how many values were taken and not marked Done: after a
// restart, the values the failed stage was holding.
func (q *Queue[T]) InHand() int { return int(q.taken - q.finished) }

// Release publishes the finished slots now, and wakes a waiting producer
// once there is room for a good run of values: a producer woken for every
// few free slots would spend more time parking than producing. When the
// consumer waits it has released everything, so a waiting producer always
// gets its wake-up eventually.
func (q *Queue[T]) Release() {
	if q.head.Load() == q.finished {
		return
	}
	q.head.Store(q.finished)
	if q.producerWaiting.Load() && q.capacity-(q.tail.Load()-q.finished) >= q.wakeRoom {
		select {
		case q.notFull <- struct{}{}:
		default:
		}
	}
}
