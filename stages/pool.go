package stages

import (
	"pipeguard/stages/spsc"
)

// roundRobin is the ordering discipline of a worker pool: the stage before
// the pool hands the packets to the workers in turn, a run of up to `run`
// consecutive packets to each, and the stage after it collects them in the
// same turns. Each worker is FIFO and emits exactly one item per input (a
// dropped one too, marked), so the collector sees the packets in the order
// the dispatcher sent them. Its position survives a restart of the stage
// that owns it: it is part of the stage struct, not of Serve.
//
// Runs rather than single packets: a batch of a few packets goes to one
// worker, which then wakes once and the collector once, instead of every
// worker waking for a packet or two; a large batch still spreads over all
// of them (docs/ARCHITECTURE.md, "Order").
type roundRobin struct {
	workers, run int // fixed at wiring
	next         int // the worker of the next packet
	inRun        int // packets already handed to next in its current run
}

func newRoundRobin(workers, run int) roundRobin {
	return roundRobin{workers: workers, run: max(run, 1)}
}

// advance moves past one packet.
func (r *roundRobin) advance() {
	if r.inRun++; r.inRun < r.run {
		return
	}
	r.inRun = 0
	if r.next++; r.next == r.workers {
		r.next = 0
	}
}

// poolRun is the run length of the worker pools for queues of capacity
// q: maxPoolRun, or less for small queues, so that a run never needs more
// than a quarter of a worker's queue (a stage reserves a whole batch of
// slots before it reads, and one run must not fill a queue alone).
func poolRun(q int) int { return min(maxPoolRun, max(q/4, 1)) }

// The queue discipline of the pipeline's stages. A stage that is about to
// wait (for input, for room, or in a system call) first publishes every
// value it produced and every slot it finished with: otherwise the stage
// it waits for could be waiting for those. spsc.Queue does so for the
// queue it waits on; these helpers do it for all of a stage's queues.

// flushAll publishes what a stage committed to each of qs.
func flushAll[T any](qs []*spsc.Queue[T]) {
	for _, q := range qs {
		q.Flush()
	}
}

// releaseAll publishes the slots a stage finished with in each of qs.
func releaseAll[T any](qs []*spsc.Queue[T]) {
	for _, q := range qs {
		q.Release()
	}
}

// reserveIn reserves a slot in qs[i], publishing all of qs and the
// stage's counters first if it has to wait for room.
func reserveIn[T any](done <-chan struct{}, qs []*spsc.Queue[T], i int, c *stageCounters) (*T, bool) {
	if p := qs[i].TryReserve(); p != nil {
		return p, true
	}
	flushAll(qs)
	c.publish()
	return qs[i].Reserve(done)
}

// reserve is reserveIn for a stage with one output queue.
func reserve[T any](done <-chan struct{}, q *spsc.Queue[T], c *stageCounters) (*T, bool) {
	if p := q.TryReserve(); p != nil {
		return p, true
	}
	c.publish()
	return q.Reserve(done)
}

// reserveTurns reserves the slots for the next n packets (at most) of a
// pool's dispatcher, in the workers' turns from rr, and puts the k-th
// packet's slot in slots[k]; it returns how many it reserved. It waits
// only for the first, and stops at the first worker whose queue is full
// (a worker's share is capped at its queue's capacity). It reserves with
// one call per worker (spsc TryReserveN), not one per slot. count and
// next are scratch, one entry per worker. If it waits, it first publishes
// everything (flushAll) and c, as reserveIn does.
func reserveTurns[T any](done <-chan struct{}, qs []*spsc.Queue[T], rr roundRobin, n int, c *stageCounters, count, next []int, slots []*T) (int, bool) {
	clear(count)
	pos := rr
	for k := range n {
		if count[pos.next] == qs[pos.next].Cap() {
			n = k
			break
		}
		count[pos.next]++
		pos.advance()
	}
	for w, q := range qs {
		got := q.TryReserveN(count[w])
		if got == 0 && count[w] > 0 && w == rr.next {
			// The first packet's slot: wait for it.
			flushAll(qs)
			c.publish()
			if _, ok := q.Reserve(done); !ok {
				return 0, false
			}
			got = 1
		}
		count[w] = got
	}
	clear(next)
	pos = rr
	for k := range n {
		w := pos.next
		if next[w] == count[w] {
			return k, true
		}
		slots[k] = qs[w].Reserved(next[w])
		next[w]++
		pos.advance()
	}
	return n, true
}

// workerNext takes a pool worker's next input, publishing its output and
// counters first if it has to wait.
func workerNext[I, O any](done <-chan struct{}, in *spsc.Queue[I], out *spsc.Queue[O], c *stageCounters) (*I, bool) {
	if p := in.TryNext(); p != nil {
		return p, true
	}
	out.Flush()
	c.publish()
	return in.Next(done)
}

// slotMarker is an item whose slot can be marked as carrying no packet.
type slotMarker[T any] interface {
	*T
	markDropped(r DropReason)
}

// workerRecover readies a restarted pool worker: it gives back what its
// predecessor reserved and, if that one failed with a packet in hand,
// emits the packet's slot marked DropPanic, so that the collector after
// the pool stays in step with the dispatcher. False means done closed.
func workerRecover[I, O any, PO slotMarker[O]](done <-chan struct{}, in *spsc.Queue[I], out *spsc.Queue[O], c *stageCounters) bool {
	out.Cancel()
	if in.InHand() == 0 {
		return true
	}
	dst, ok := out.Reserve(done)
	if !ok {
		return false
	}
	PO(dst).markDropped(DropPanic)
	c.drop(DropPanic)
	out.Commit()
	in.Done()
	return true
}

// abandonInHand marks the values a failed stage was holding in each of qs
// as done, counts them as lost to the failure (DropPanic), and returns how
// many there were.
func abandonInHand[T any](c *stageCounters, qs ...*spsc.Queue[T]) int {
	var n int
	for _, q := range qs {
		n += q.InHand()
		q.Done()
	}
	c.lostToPanic(uint64(n))
	return n
}

// countHeldBatch counts the batch a failed edge stage had read and not
// handed on (*held packets) as lost to the failure, and clears it.
func countHeldBatch(c *stageCounters, held *int) {
	c.lostToPanic(uint64(*held))
	*held = 0
}
