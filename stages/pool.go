package stages

import (
	"time"

	"pipeguard/supervisor/clock"
)

// roundRobin is the ordering discipline of a worker pool: the stage before
// the pool sends packet i to worker i mod N, the stage after collects from
// worker i mod N. Each worker is FIFO and emits exactly one item per input
// (a dropped one too, marked), so the collector sees the packets in the
// order the dispatcher sent them. Its position survives a restart of the
// stage that owns it: it is part of the stage struct, not of Serve.
type roundRobin struct{ next int }

func (r *roundRobin) advance(n int) {
	r.next++
	if r.next == n {
		r.next = 0
	}
}

// send blocks until v is in ch or done is closed; the pipeline's inner
// stages push back rather than drop.
//
// It first tries without waiting: a select that also watches done locks
// done's channel too, and every stage shares that one channel, so on the
// per-packet path it would be the hottest lock in the process. Only a send
// that must wait pays for watching done.
func send[T any](done <-chan struct{}, ch chan<- T, v *T) bool {
	select {
	case ch <- *v:
		return true
	default:
	}
	select {
	case ch <- *v:
		return true
	case <-done:
		return false
	}
}

// recv receives from ch into v, or reports false once done is closed. Like
// send, it tries without waiting first.
func recv[T any](done <-chan struct{}, ch <-chan T, v *T) bool {
	select {
	case *v = <-ch:
		return true
	default:
	}
	select {
	case *v = <-ch:
		return true
	case <-done:
		return false
	}
}

// burstClock reads the clock once per burst of packets rather than once
// per packet: the protocol's timers count in seconds, and on a virtual
// machine a clock read can cost as much as the rest of a route step. A
// burst ends when the stage would wait for input, or after burstClockMax
// packets.
type burstClock struct {
	now  time.Time
	left int
}

const burstClockMax = 64

// get returns the time for the next packet; fresh forces a new reading.
func (b *burstClock) get(c clock.Clock, fresh bool) time.Time {
	if fresh || b.left <= 0 {
		b.now = c.Now()
		b.left = burstClockMax
	}
	b.left--
	return b.now
}

// recvNoted is recv that also reports whether it had to wait.
func recvNoted[T any](done <-chan struct{}, ch <-chan T, v *T) (ok, waited bool) {
	select {
	case *v = <-ch:
		return true, false
	default:
	}
	select {
	case *v = <-ch:
		return true, true
	case <-done:
		return false, true
	}
}
