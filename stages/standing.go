package stages

import (
	"time"

	"pipeguard/tunio"
)

// standing tells a loop that reads and takes from a managed queue (the
// sequential engine's, the pipeline's edge stage once it took its queue
// over) whether a backlog stands in the kernel's queue in front of it
// (the TUN device's ring, the socket's buffer): CoDel's test, applied to
// the queue before the managed one. A read that leaves the kernel's
// queue non-empty starts the clock; one that leaves it empty stops it;
// once reads have left it non-empty for a target's time, a backlog
// stands, and the loop drains it into the managed queue, where flows
// take turns and the controller acts. Until then the loop works on each
// batch where it read it, as without queue management: a burst that the
// loop clears within the target is not a queue to manage, and passing it
// through the managed queue (drain everything, then runs of up to a
// batch) only makes every packet wait for the run in progress. Measured
// in docs/ARCHITECTURE.md ("A queue only once one stands").
//
// Times are the managed queues' clock (managedQueues.now). The zero
// value, with target set, is ready; a loop uses it from its own
// goroutine only.
type standing struct {
	target time.Duration
	since  time.Duration // when reads began leaving the kernel's queue non-empty; 0: not since the last that emptied it
}

// emptied records a read, or a look, that found the kernel's queue
// empty.
func (s *standing) emptied() { s.since = 0 }

// stood records a read at now that left the kernel's queue non-empty,
// and reports whether reads have left it so for at least the target.
func (s *standing) stood(now time.Duration) bool {
	if s.since == 0 {
		s.since = max(now, 1) // 0 means "empty"; keep the clock's first instant distinct
	}
	return now-s.since >= s.target
}

// direct records a read of datagrams, which drained the socket if it
// came back short, and reports whether the batch goes direct: it was read
// waiting (the managed queue idle), and no backlog stands in the socket's
// buffer. A read without waiting (draining a backlog into the queue) is
// queued whatever stands, and leaves the clock as it was unless it drained
// the socket.
func (s *standing) direct(waited, drained bool, m *managedQueues) bool {
	if drained {
		s.emptied()
	}
	return waited && (drained || !s.stood(m.now()))
}

// afterRead is stood for the TUN device's ring, which a read does not
// say it left non-empty: it asks the device (one poll(2)), after a read
// into an idle managed queue, and reports whether a backlog stands.
func (s *standing) afterRead(dev tunio.ReadPoller, m *managedQueues) bool {
	if !dev.Readable() {
		s.emptied()
		return false
	}
	return s.stood(m.now())
}
