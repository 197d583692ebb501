package stages

import (
	"context"
	"log/slog"

	"pipeguard/stages/fq"
	"pipeguard/stages/spsc"
)

// dispatchIn takes runs of datagrams from the inbound managed queue, in
// the order its scheduler hands them out (peer endpoint by peer endpoint,
// past the controller, which dropped some before any decryption was spent
// on them, and marked others: a marked datagram's outer ECN becomes CE,
// which acceptStep carries into the inner header). Then it either opens,
// checks and writes the run itself, when the run is small or the spread
// decision says every batch goes inline and nothing is in the pools
// (inline.go), or copies each datagram into the decrypt workers' queues
// in the pool's turns (roundRobin), waiting when the next one is full.
type dispatchIn struct {
	t       *Tunnel
	q       *fq.Queue[inItem]
	workers []*spsc.Queue[inItem]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	run     int
	tally   runTally

	// The inline path: the counters of the steps it does for the decrypt
	// pool, route-in and tunwrite, its batch of slots and of inner
	// packets.
	dec, route, write *stageCounters
	batch             []*inItem
	bufs              [][]byte
	err               error // why work stopped the stage, if not done
}

func newDispatchIn(t *Tunnel, q *fq.Queue[inItem], workers []*spsc.Queue[inItem], c, dec, route, write *stageCounters, log *slog.Logger) *dispatchIn {
	run := min(max(t.udp.BatchSize(), 1), maxBatch)
	return &dispatchIn{t: t, q: q, workers: workers, rr: newRoundRobin(len(workers), poolRun(workers[0].Cap())),
		c: c, log: log, run: run, dec: dec, route: route, write: write,
		batch: make([]*inItem, 0, run), bufs: make([][]byte, 0, run)}
}

func (s *dispatchIn) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for _, q := range s.workers {
		q.Cancel()
	}
	// A failed predecessor's run: the datagrams it handed to the pool
	// count in flight from now; the one it was working on is lost, and
	// with it an inline run it had not written yet; the rest goes on.
	if s.tally.active {
		from := s.tally.handled() + 1
		s.t.inline.in.add(s.tally.forwarded)
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
		s.dec.publish()
		s.route.publish()
		s.write.publish()
		if s.t.inline.takeOverIn() {
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

// work sends the datagrams from to n of the run in hand on: through the
// decrypt, route-in and tunwrite steps itself (inline) when the run is
// small enough and nothing is in the pools, else through the pools.
// False means the stage is to return: done was closed, or the TUN device
// is gone (err set in s.err).
func (s *dispatchIn) work(ctx context.Context, from, n int) bool {
	s.tally = runTally{active: true}
	inline := from == 0 && n <= s.t.inline.limit() && s.t.inline.in.empty()
	s.batch = s.batch[:0]
	for i := from; i < n; i++ {
		it, mark := s.q.Hand(i)
		if mark {
			markIn(it)
		}
		s.t.faults.hit(stageDispatchIn)
		if inline {
			s.batch = append(s.batch, it)
			s.tally.sealed++ // taken on, not yet written
			continue
		}
		if !s.dispatch(ctx.Done(), it) {
			return false
		}
	}
	if inline {
		if err := s.t.openAcceptWrite(s.batch, &s.bufs, s.dec, s.route, s.write); err != nil {
			s.err = edgeErr(ctx, err)
			s.tally = runTally{}
			return false
		}
	}
	s.t.inline.in.add(s.tally.forwarded)
	s.tally = runTally{}
	return true
}

// stopErr is what Serve returns once work stopped it.
func (s *dispatchIn) stopErr() error {
	err := s.err
	s.err = nil
	return err
}

// dispatch copies one datagram into the queue of the decrypt worker whose
// turn it is; false means done was closed while it waited for room.
func (s *dispatchIn) dispatch(done <-chan struct{}, it *inItem) bool {
	w := s.rr.next
	dst, ok := reserveIn(done, s.workers, w, s.c)
	if !ok {
		return false
	}
	n := int(it.pkt.MsgLen)
	copy(dst.pkt.Buf[:n], it.pkt.Buf[:n])
	dst.pkt.MsgLen = it.pkt.MsgLen
	dst.src, dst.local, dst.ecn, dst.peer, dst.kp, dst.drop = it.src, it.local, it.ecn, nil, nil, dropNone
	s.workers[w].Commit()
	s.rr.advance()
	s.tally.forwarded++
	s.c.pass(n)
	return true
}
