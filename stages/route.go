package stages

import (
	"context"
	"log/slog"
	"time"

	"pipeguard/stages/fq"
	"pipeguard/stages/spsc"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// The route stages: the ordered step of each direction, each its own
// supervised actor between a worker pool and the managed queue or an edge
// stage.
//
//	inbound:  decrypt pool ─► route-in (collect in turns, acceptStep) ─► tunwrite
//	outbound: managed queue ─► route-out (routeStep, dispatch in turns) ─► encrypt pool
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
//
// sealed counts, in a run a stage seals and sends itself (route-out's
// inline runs), the packets sealed and not yet sent: lost, too, if it
// panics before it sends them.
//
// active is set while a run is in hand, so that a successor can tell one
// its predecessor left half done from one it finished.
type runTally struct {
	forwarded, settled, sealed int
	active                     bool
}

// handled is how many packets of the run were dealt with, one way or
// another.
func (r *runTally) handled() int { return r.forwarded + r.settled + r.sealed }

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

// routeOut takes runs of packets from the outbound managed queue, in the
// order the queue's scheduler hands them out (flow by flow, new flows
// first, past the controller, which dropped some and marked others: a
// marked packet gets CE here, before anything else), and picks each
// packet's peer, keypair and counter (routeStep), in its slot: the
// counter is reserved only for a packet that will be sent. Then it either
// seals and sends the run itself, when the run is small or the spread
// decision says every batch goes inline and nothing is in the pools
// (inline.go), or copies each routed packet into the encrypt pool's
// queues in the pool's turns, waiting when the next one is full. A packet
// not sent on (no route, staged for a handshake) ends here and takes no
// slot in the pool.
type routeOut struct {
	t       *Tunnel
	q       *fq.Queue[outItem]
	workers []*spsc.Queue[outItem]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	run     int
	tally   runTally

	// The inline path: the counters of the steps it does for the
	// encrypt pool and udpsend, and its batch of datagrams.
	enc, send *stageCounters
	msgs      []tunio.Datagram
	peers     []*peer // of msgs, for sendDatagrams
	err       error   // why work stopped the stage, if not done
}

func newRouteOut(t *Tunnel, q *fq.Queue[outItem], workers []*spsc.Queue[outItem], c, enc, send *stageCounters, log *slog.Logger) *routeOut {
	run := routeRun(t.tun.BatchSize())
	return &routeOut{t: t, q: q, workers: workers, rr: newRoundRobin(len(workers), poolRun(workers[0].Cap())),
		c: c, log: log, run: run, enc: enc, send: send, msgs: make([]tunio.Datagram, 0, run), peers: make([]*peer, 0, run)}
}

func (s *routeOut) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for _, q := range s.workers {
		q.Cancel()
	}
	// A failed predecessor's run: the packets it handed to the pool count
	// in flight from now; the one it was working on, and those it had
	// sealed to send itself, are lost; the rest of the run goes on.
	if s.tally.active {
		from := s.tally.handled() + 1
		s.t.inline.out.add(s.tally.forwarded)
		s.c.lostToPanic(uint64(s.tally.sealed + 1))
		s.tally = runTally{}
		if held := s.q.InHand(fq.Consumer); from < held && !s.work(ctx, from, held) {
			return s.stopErr()
		}
	}
	s.q.Done(fq.Consumer)
	for {
		flushAll(s.workers)
		s.c.publish()
		s.enc.publish()
		s.send.publish()
		if s.t.inline.takeOverOut() {
			// Hand the queue to the edge stage once it is empty.
			s.q.Done(fq.Consumer)
			if s.q.Yield(fq.Consumer) {
				if !s.q.Wait(fq.Consumer, done) {
					return nil
				}
				continue
			}
		}
		n, dropped := s.q.Take(fq.Consumer, s.t.aqm.now(), s.run)
		if dropped > 0 {
			s.c.drops[DropQueueDelay].Add(uint64(dropped))
		}
		if n == 0 {
			if dropped == 0 && !s.q.Wait(fq.Consumer, done) {
				return nil
			}
			continue
		}
		if !s.work(ctx, 0, n) {
			return s.stopErr()
		}
	}
}

// stopErr is what Serve returns once work stopped it.
func (s *routeOut) stopErr() error {
	err := s.err
	s.err = nil
	return err
}

// work routes the packets from to n of the run in hand and sends them on:
// itself (inline) when the run is small enough and nothing is in the
// pools, else through the pools. False means the stage is to return:
// done was closed, or the socket is gone (err set in s.err).
func (s *routeOut) work(ctx context.Context, from, n int) bool {
	now := s.t.clock.Now()
	s.tally = runTally{active: true}
	if from > 0 || n > s.t.inline.limit() || !s.t.inline.out.empty() {
		for i := from; i < n; i++ {
			if !s.route(ctx.Done(), i, now) {
				return false
			}
		}
		s.t.inline.out.add(s.tally.forwarded)
		s.tally = runTally{}
		return true
	}
	s.msgs, s.peers = s.msgs[:0], s.peers[:0]
	for i := range n {
		it, mark := s.q.Hand(i)
		if mark {
			markOut(it)
		}
		s.t.faults.hit(stageRouteOut)
		if s.t.routeAndSeal(it, now, s.c, s.enc) {
			s.msgs = append(s.msgs, datagramOf(it))
			s.peers = append(s.peers, it.peer)
			s.tally.sealed++
		} else {
			s.tally.settled++ // dropped and counted, or staged
		}
	}
	s.tally = runTally{}
	if err := s.t.sendDatagrams(s.msgs, s.peers, s.send); err != nil {
		s.err = edgeErr(ctx, err)
		return false
	}
	return true
}

// route routes the i-th packet of the run and hands it to the encrypt
// worker whose turn it is; false means done was closed while it waited
// for room.
func (s *routeOut) route(done <-chan struct{}, i int, now time.Time) bool {
	it, mark := s.q.Hand(i)
	if mark {
		markOut(it)
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
	dst.peer, dst.kp, dst.counter, dst.dst, dst.local, dst.drop, dst.ecn = it.peer, it.kp, it.counter, it.dst, it.local, dropNone, it.ecn
	s.workers[w].Commit()
	s.rr.advance()
	s.tally.forwarded++
	s.c.pass(n)
	return true
}
