package stages

import (
	"sync/atomic"
	"time"
)

// The pipeline's inline path. Every hand-off between stages costs a
// goroutine wake-up, and on an otherwise idle machine that is a futex
// wake of a parked thread, which the waking stage pays on its own
// critical path (tens of microseconds on a virtual machine): a pipeline
// that hands a lone packet through two stages per direction answers a
// ping later than the sequential engine, and spends more CPU on a trickle
// of small batches. So an edge stage that reads a small batch while its
// direction's pipeline holds nothing (pool, route stage, last stage) takes
// the batch through the remaining steps itself, routing included, calling
// the same step functions as the stages after it, and hands nothing on. Larger batches, and any batch while
// earlier packets are still in the pipeline, take the pipeline: that is
// where the workers pay.
//
// Order: the edge stage is its direction's only dispatcher, and it goes
// inline only when the packets it dispatched before have all left the
// pipeline (flight is zero), so an inline batch never overtakes one in
// the pipeline, its ordered step (the replay window, the send counter)
// runs after theirs, and nothing it dispatches later can overtake it.
//
// Counting: the steps done inline are counted under the stage whose step
// it is (decrypt, route-in, tunwrite; route-out, encrypt, udpsend), in a
// counter instance of that stage's own which only the edge stage writes.

// defaultInlineMax is the largest batch an edge stage takes through inline:
// enough for a ping, an ACK train or a small burst; a full read (a
// segmentation-offloaded TCP burst is ~45 packets, a loaded socket 128)
// still spreads over the workers.
const defaultInlineMax = 8

// flight counts the packets of one direction that its dispatcher handed to
// the pipeline and that have not left it: the dispatcher adds a batch once
// it has committed it; the route stage subtracts those that end with it
// (dropped, keepalives, slots that carry none, staged for a handshake),
// once it has marked them done; the last stage subtracts the rest once
// they have left (written or sent); whoever restarts after a panic
// subtracts what was lost. Each packet is subtracted once, after the
// ordered step (acceptStep, routeStep) ran on it. The later stages may
// subtract first, but only the dispatcher reads the count, after its own
// adds, so it reads zero exactly when everything it handed on has left.
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
	in, out flight
}

// limit is the largest batch that may go inline now.
func (p *inlinePath) limit() int { return int(p.max.Load()) }

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
