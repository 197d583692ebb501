package stages

import (
	"sync/atomic"
	"time"

	"pipeguard/wire"
)

// The pipeline's inline path. Every hand-off between stages costs a
// goroutine wake-up, and on an otherwise idle machine that is a futex
// wake of a parked thread, which the waking stage pays on its own
// critical path (tens of microseconds on a virtual machine): a pipeline
// that hands a lone packet through two stages per direction answers a
// ping later than the sequential engine, and spends more CPU on a trickle
// of small batches. So:
//   - an edge stage (udprecv, tunread) that reads a small batch while its
//     direction's managed queue and pools hold nothing takes the batch
//     through the remaining steps itself, routing included, calling the
//     same step functions as the stages after it, and hands nothing on;
//   - the stage after the managed queue (dispatch-in, route-out) does the
//     same with a run it takes from the queue while the pools hold
//     nothing, when the run is small, or whatever its size when the spread
//     decision says so (spread.go).
//
// Larger batches, and any batch while earlier packets are still in the
// pools, take the pools: that is where the workers pay. With queue
// management on, an edge stage takes at most defaultInlineMax packets
// inline (readerLimit): it must be back in its next read soon.
//
// Order: the stage after the managed queue is its direction's only
// dispatcher to the pools, and it goes inline only when the packets it
// dispatched before have all left them (flight is zero), so an inline run
// never overtakes one in the pools, its ordered step (the replay window,
// the send counter) runs after theirs, and nothing it dispatches later
// can overtake it. An edge stage goes inline only when, besides, the
// managed queue holds nothing, in its flows or in the hand of the stage
// after it (fq.Queue.Idle); it is the queue's only producer, so nothing
// can enter behind its back, and what it read is the oldest packet there
// is.
//
// Counting: the steps done inline are counted under the stage whose step
// it is (decrypt, route-in, tunwrite; route-out, encrypt, udpsend), in
// counter instances of that stage's own which only the stage doing them
// inline writes.

// defaultInlineMax is the largest batch an edge stage takes through inline:
// enough for a ping, an ACK train or a small burst; a full read (a
// segmentation-offloaded TCP burst is ~45 packets, a loaded socket 128)
// still spreads over the workers.
const defaultInlineMax = 8

// flight counts the packets of one direction that the stage after the
// managed queue handed to the pools and that have not left them: it adds
// a run's once it has committed them (before it gives the run's slots
// back to the managed queue, so that an edge stage that finds the queue
// idle finds them counted); the route stage subtracts those that end with
// it (dropped, keepalives, slots that carry none, staged for a
// handshake), once it has marked them done; the last stage subtracts the
// rest once they have left (written or sent); whoever restarts after a
// panic subtracts what was lost. Each packet is subtracted once, after the
// ordered step (acceptStep, routeStep) ran on it. The later stages may
// subtract first, but the count is read only after the adds of the runs
// before, so it reads zero exactly when everything handed on has left.
type flight struct {
	n atomic.Int64
	_ [56]byte // its own cache line: two stages write it
}

func (f *flight) add(n int)   { f.n.Add(int64(n)) }
func (f *flight) done(n int)  { f.n.Add(-int64(n)) }
func (f *flight) empty() bool { return f.n.Load() == 0 }

// inlinePath is a tunnel's setting and state of the inline path (pipeline
// engine only).
type inlinePath struct {
	// max: batches of at most max packets may go inline; 0: never. The
	// spread decision (spread.go) moves it between defaultInlineMax and
	// inlineAll while the tunnel runs, unless fixed.
	max     atomic.Int64
	fixed   bool // set before Serve (tests): max stays as it is
	managed bool // queue management is on (readerLimit)
	// drainIn and drainOut: the edge stage of the direction can read
	// without waiting (tunio.TryReader, tunio.ReadPoller), so it may take
	// its managed queue over (takeOverIn, takeOverOut).
	drainIn, drainOut bool
	in, out           flight
}

// limit is the largest batch that may go inline now.
func (p *inlinePath) limit() int { return int(p.max.Load()) }

// takeOverIn and takeOverOut report whether the edge stage of a
// direction is to take its managed queue over from the stage after it
// and work on the packets itself, as the sequential engine's loop does:
// with queue management on, while the spread decision says every batch
// goes inline (CPU time is scarce, and a hand-off costs more than it
// buys), when the edge stage can drain the kernel without waiting.
//
// The hand-over: the stage after the queue yields it between two runs
// (fq.Queue.Yield), but a queue with packets in it only while the edge
// stage is not blocked in a read (fq.Queue.Blocking), so that no packet
// waits on it; the edge stage hands the queue back whenever the spread
// decision changes its mind (fq.Queue.Claim).
func (p *inlinePath) takeOverIn() bool  { return p.managed && p.drainIn && p.limit() >= inlineAll }
func (p *inlinePath) takeOverOut() bool { return p.managed && p.drainOut && p.limit() >= inlineAll }

// readerLimit is the largest batch an edge stage that reads from the
// kernel may take through inline itself. With queue management on, never
// more than defaultInlineMax, whatever the spread decision says: the
// reader must be back in its next read soon, or the kernel's queue in
// front of it, which no one manages, fills while it works; larger
// batches go inline too, but by the stage after the managed queue.
// Without queue management, the spread decision's limit.
func (p *inlinePath) readerLimit() int {
	if p.managed {
		return min(p.limit(), defaultInlineMax)
	}
	return p.limit()
}

// routeAndSeal routes one packet read from the TUN device and seals it in
// its slot, counting the route step on route and the seal on enc: the
// steps after the managed queue, done inline by tunread or route-out. It
// reports whether the packet is to be sent; if not, it was dropped and
// counted, or staged for a handshake.
func (t *Tunnel) routeAndSeal(it *outItem, now time.Time, route, enc *stageCounters) bool {
	r, staged := t.routeStep(it, now)
	if r != dropNone {
		route.drop(r)
		return false
	}
	if staged {
		return false
	}
	route.pass(int(it.pkt.InnerLen))
	sealStep(it, it)
	enc.pass(int(it.pkt.MsgLen))
	return true
}

// openAcceptWrite takes a batch of datagrams through the decrypt,
// route-in and tunwrite steps, in their slots, counting each step on its
// stage's counters: the steps after the managed queue, done inline by
// udprecv or dispatch-in. bufs is scratch for the inner packets. A slot
// marked dropped (skipped, or dropped and counted on reading) is passed
// over.
func (t *Tunnel) openAcceptWrite(batch []*inItem, bufs *[][]byte, dec, route, write *stageCounters) error {
	now := t.clock.Now()
	*bufs = (*bufs)[:0]
	for _, it := range batch {
		if it.drop != dropNone {
			continue
		}
		if r := t.openStep(it, it); r != dropNone {
			dec.drop(r)
			continue
		}
		dec.pass(int(it.pkt.InnerLen))
		if t.acceptOne(it, now, route) {
			route.pass(int(it.pkt.InnerLen))
			*bufs = append(*bufs, it.pkt.Buf[:wire.InnerOffset+int(it.pkt.InnerLen)])
		}
	}
	if len(*bufs) == 0 {
		return nil
	}
	return t.writeTUN(t.tun, *bufs, write)
}

// acceptOne runs the ordered checks (acceptStep) on one opened packet,
// counting a drop or a keepalive on c, and reports whether it carries an
// inner packet to deliver: the step after the decrypt pool, in route-in or
// inline in udprecv.
func (t *Tunnel) acceptOne(it *inItem, now time.Time, c *stageCounters) bool {
	if r := t.acceptStep(it, now); r != dropNone {
		c.drop(r)
		return false
	}
	if it.pkt.InnerLen == 0 {
		c.keepalives.Add(1)
		return false
	}
	return true
}
