package stages

import (
	"context"
	"log/slog"
	"time"

	"pipeguard/stages/spsc"
	"pipeguard/wire"
)

// The route stages: the ordered step of each direction, each its own
// supervised actor between a worker pool and an edge stage.
//
//	inbound:  decrypt pool ─► route-in (collect in turns, acceptStep) ─► tunwrite
//	outbound: tunread ─► route-out (routeStep, dispatch in turns) ─► encrypt pool
//
// Both take a run of packets at a time (what is there, up to a TUN batch),
// copy each live packet once into the next queue's slot, and mark the run
// done in one go; positions are published per group (spsc), so the stage
// after wakes about once per group, not per packet.
//
// What a run holds: a route stage counts, of the packets it took in the
// current run, those it handed on (forwarded) and those that ended with it
// (settled: dropped, keepalives, slots that carried none, staged for a
// handshake). If it panics, its successor counts the rest (the packet in
// hand) as lost; the ones handed on are not lost, and the ones settled
// were counted already.
type runTally struct{ forwarded, settled int }

// abandon is run by a restarted route stage: it marks what its
// predecessor held in qs done, counts what it lost (held, neither handed
// on nor settled) as DropPanic, and returns how many of the held packets
// left the pipeline here (all but the ones handed on), for flight.
func (r *runTally) abandon(c *stageCounters, qs ...*spsc.Queue[inItem]) int {
	held := 0
	for _, q := range qs {
		held += q.InHand()
		q.Done()
	}
	return r.abandonHeld(c, held)
}

func (r *runTally) abandonHeld(c *stageCounters, held int) int {
	c.lostToPanic(uint64(held - r.forwarded - r.settled))
	left := held - r.forwarded
	*r = runTally{}
	return left
}

// routeRun is the most packets a route stage takes before it marks them
// done: a TUN batch, what tunwrite writes or tunread reads at once.
func routeRun(tunBatch int) int { return min(max(tunBatch, 1), maxBatch) }

// routeIn collects the decrypt pool's output in the pool's turns, runs
// the ordered checks on each packet in its slot (acceptStep: the replay
// window, the keypair's age and confirmation, roaming, the peer's timers,
// cryptokey routing of the inner source), and copies each accepted inner
// packet into tunwrite's queue, waiting when it is full.
type routeIn struct {
	t       *Tunnel
	workers []*spsc.Queue[inItem]
	out     *spsc.Queue[tunPacket]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	run     int
	tally   runTally
}

func newRouteIn(t *Tunnel, workers []*spsc.Queue[inItem], out *spsc.Queue[tunPacket], c *stageCounters, log *slog.Logger) *routeIn {
	return &routeIn{t: t, workers: workers, out: out, rr: newRoundRobin(len(workers), poolRun(workers[0].Cap())),
		c: c, log: log, run: routeRun(t.tun.BatchSize())}
}

func (s *routeIn) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.out.Cancel()
	s.t.inline.in.done(s.tally.abandon(s.c, s.workers...))
	for {
		// Publish everything before waiting: the slots finished with,
		// the packets handed on, the counts.
		releaseAll(s.workers)
		s.out.Flush()
		s.c.publish()
		p, ok := s.workers[s.rr.next].Next(done)
		if !ok {
			return nil
		}
		// The clock once per run, as the sequential engine reads it
		// once per batch.
		now := s.t.clock.Now()
		for taken := 1; ; taken++ {
			// Advance first: if the checks below panic, the restarted
			// stage resumes at the next worker and the order holds.
			s.rr.advance()
			if !s.accept(done, p, now) {
				return nil
			}
			if taken == s.run {
				break
			}
			if p = s.workers[s.rr.next].TryNext(); p == nil {
				break
			}
		}
		for _, q := range s.workers {
			q.Done()
		}
		s.t.inline.in.done(s.tally.settled)
		s.tally = runTally{}
	}
}

// accept runs the ordered checks on one slot from the pool and hands its
// inner packet on; false means done was closed while it waited for room.
func (s *routeIn) accept(done <-chan struct{}, it *inItem, now time.Time) bool {
	if it.drop != dropNone {
		s.tally.settled++ // counted where it was dropped
		return true
	}
	s.t.faults.hit(stageRouteIn)
	if !s.t.acceptOne(it, now, s.c) {
		s.tally.settled++
		return true
	}
	dst, ok := reserve(done, s.out, s.c)
	if !ok {
		return false
	}
	n := int(it.pkt.InnerLen)
	copy(dst.Buf[wire.InnerOffset:wire.InnerOffset+n], it.pkt.Inner())
	dst.InnerLen = it.pkt.InnerLen
	s.out.Commit()
	s.tally.forwarded++
	s.c.pass(n)
	return true
}

// routeOut picks each packet's peer, keypair and counter in the order
// tunread read them (routeStep), in its slot, and copies each routed
// packet into the encrypt pool's queues in the pool's turns, waiting when
// the next one is full. A packet not sent on (too big, no route, staged
// for a handshake) ends here and takes no slot in the pool.
type routeOut struct {
	t       *Tunnel
	in      *spsc.Queue[outItem]
	workers []*spsc.Queue[outItem]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	run     int
	tally   runTally
}

func newRouteOut(t *Tunnel, in *spsc.Queue[outItem], workers []*spsc.Queue[outItem], c *stageCounters, log *slog.Logger) *routeOut {
	return &routeOut{t: t, in: in, workers: workers, rr: newRoundRobin(len(workers), poolRun(workers[0].Cap())),
		c: c, log: log, run: routeRun(t.tun.BatchSize())}
}

func (s *routeOut) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for _, q := range s.workers {
		q.Cancel()
	}
	held := s.in.InHand()
	s.in.Done()
	s.t.inline.out.done(s.tally.abandonHeld(s.c, held))
	for {
		flushAll(s.workers)
		s.c.publish()
		p, ok := s.in.Next(done)
		if !ok {
			return nil
		}
		now := s.t.clock.Now()
		for taken := 1; ; taken++ {
			if !s.route(done, p, now) {
				return nil
			}
			if taken == s.run {
				break
			}
			if p = s.in.TryNext(); p == nil {
				break
			}
		}
		s.in.Done()
		s.t.inline.out.done(s.tally.settled)
		s.tally = runTally{}
	}
}

// route routes one packet and hands it to the encrypt worker whose turn
// it is; false means done was closed while it waited for room.
func (s *routeOut) route(done <-chan struct{}, it *outItem, now time.Time) bool {
	if it.drop != dropNone {
		s.tally.settled++ // too big: counted by tunread
		return true
	}
	s.t.faults.hit(stageRouteOut)
	r, staged := s.t.routeStep(it, now)
	if r != dropNone || staged {
		if r != dropNone {
			s.c.drop(r)
		}
		s.tally.settled++
		return true
	}
	w := s.rr.next
	dst, ok := reserveIn(done, s.workers, w, s.c)
	if !ok {
		return false
	}
	n := int(it.pkt.InnerLen)
	copy(dst.pkt.Buf[wire.InnerOffset:wire.InnerOffset+n], it.pkt.Inner())
	dst.pkt.InnerLen = it.pkt.InnerLen
	dst.peer, dst.kp, dst.counter, dst.dst, dst.local, dst.drop = it.peer, it.kp, it.counter, it.dst, it.local, dropNone
	s.workers[w].Commit()
	s.rr.advance()
	s.tally.forwarded++
	s.c.pass(n)
	return true
}
