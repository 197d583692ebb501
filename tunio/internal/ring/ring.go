// Package ring is a bounded FIFO of byte records stored in fixed-size slots
// of one preallocated array, for the in-memory fakes memtun and memudp.
//
// Records are copied in by Push and copied out by Pop, so no buffer is ever
// shared between a producer and a consumer, and nothing is allocated after
// New.
package ring

import "sync"

// Ring is a bounded FIFO of byte records, each with a value of type M
// attached (the sender's address, for example). Make one with New; the zero
// value is not usable. All methods are safe for concurrent use.
type Ring[M any] struct {
	slotSize int

	// readable and writable hold a token when the ring may have become
	// non-empty or non-full: a waiter that finds the condition false again
	// just waits again. One token is enough because every waiter re-checks
	// under mu and passes the token on when it leaves work for others.
	readable chan struct{}
	writable chan struct{}
	closed   chan struct{}
	once     sync.Once

	mu    sync.Mutex // guards the fields below and the slot contents
	data  []byte
	lens  []int
	meta  []M
	head  int // index of the oldest record
	count int
}

// New returns a ring of slots records of at most slotSize bytes each.
func New[M any](slots, slotSize int) *Ring[M] {
	return &Ring[M]{
		slotSize: slotSize,
		readable: make(chan struct{}, 1),
		writable: make(chan struct{}, 1),
		closed:   make(chan struct{}),
		data:     make([]byte, slots*slotSize),
		lens:     make([]int, slots),
		meta:     make([]M, slots),
	}
}

// SlotSize is the longest record the ring holds.
func (r *Ring[M]) SlotSize() int { return r.slotSize }

// Len is the number of records queued.
func (r *Ring[M]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Close wakes every waiter; later Push and Pop calls fail. Records still
// queued are discarded.
func (r *Ring[M]) Close() {
	r.once.Do(func() { close(r.closed) })
}

// Closed is closed when Close has been called.
func (r *Ring[M]) Closed() <-chan struct{} { return r.closed }

func (r *Ring[M]) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// TryPush copies the records in recs (with their metas) into the ring until
// it is full, without waiting, and returns how many it queued. A record
// longer than SlotSize is a caller bug and panics. ok is false once the ring
// is closed.
func (r *Ring[M]) TryPush(recs [][]byte, metas []M) (n int, ok bool) {
	if r.isClosed() {
		return 0, false
	}
	r.mu.Lock()
	slots := len(r.lens)
	for n < len(recs) && r.count < slots {
		i := (r.head + r.count) % slots
		rec := recs[n]
		if len(rec) > r.slotSize {
			r.mu.Unlock()
			panic("ring: record longer than slot")
		}
		copy(r.data[i*r.slotSize:], rec)
		r.lens[i] = len(rec)
		if metas != nil {
			r.meta[i] = metas[n]
		}
		r.count++
		n++
	}
	r.mu.Unlock()
	if n > 0 {
		signal(r.readable)
	}
	return n, true
}

// Push queues all of recs, waiting for room as needed, until done (may be
// nil) is closed or the ring is closed. It returns how many it queued and
// whether it queued them all.
func (r *Ring[M]) Push(recs [][]byte, metas []M, done <-chan struct{}) (n int, ok bool) {
	for {
		var m int
		var mt []M
		if metas != nil {
			mt = metas[n:]
		}
		m, ok = r.TryPush(recs[n:], mt)
		n += m
		if !ok || n == len(recs) {
			if ok && r.Len() < len(r.lens) {
				signal(r.writable) // room left for another pusher
			}
			return n, ok
		}
		select {
		case <-r.writable:
		case <-r.closed:
			return n, false
		case <-done:
			return n, false
		}
	}
}

// Pop waits until at least one record is queued, then moves up to len(dst)
// records out: record i is copied into dst[i] (truncated if dst[i] is
// shorter), its full length stored in lens[i] and its meta in metas[i]
// (metas may be nil). ok is false once the ring is closed.
func (r *Ring[M]) Pop(dst [][]byte, lens []int, metas []M) (n int, ok bool) {
	return r.pop(dst, lens, metas, true)
}

// TryPop is Pop without waiting: n is 0 when no record is queued.
func (r *Ring[M]) TryPop(dst [][]byte, lens []int, metas []M) (n int, ok bool) {
	return r.pop(dst, lens, metas, false)
}

func (r *Ring[M]) pop(dst [][]byte, lens []int, metas []M, wait bool) (n int, ok bool) {
	for {
		if r.isClosed() {
			return 0, false
		}
		r.mu.Lock()
		slots := len(r.lens)
		for n < len(dst) && r.count > 0 {
			i := r.head
			copy(dst[n], r.data[i*r.slotSize:i*r.slotSize+r.lens[i]])
			lens[n] = r.lens[i]
			if metas != nil {
				metas[n] = r.meta[i]
			}
			r.head = (r.head + 1) % slots
			r.count--
			n++
		}
		left := r.count
		r.mu.Unlock()
		if n > 0 {
			signal(r.writable)
			if left > 0 {
				signal(r.readable) // pass the token to another popper
			}
			return n, true
		}
		if !wait {
			return 0, true
		}
		select {
		case <-r.readable:
		case <-r.closed:
			return 0, false
		}
	}
}

// signal leaves a token in c unless one is already there.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
