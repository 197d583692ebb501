package stages

import (
	"context"
	"log/slog"
	"runtime"

	"pipeguard/stages/fq"
	"pipeguard/stages/spsc"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// tunRead reads inner packets from the TUN device in batches (a
// segmentation-offloaded read arrives already split into ≤MTU packets)
// straight into the slots of the outbound managed queue, and commits
// them there, timestamped and sorted by flow, for route-out to take. It
// does nothing else, so that it is back in the next read at once: the
// TUN device's queue, which no one manages, stays short, and the backlog
// forms in the managed queue instead. It waits only when the managed
// queue has no room for a batch; the device's queue then fills and the
// kernel drops, as a network would.
//
// A small batch read while the managed queue and the pools hold nothing
// is the exception (inline.go): it goes through the remaining steps here,
// without the hand-offs. And while the spread decision says every batch
// goes inline (CPU time is scarce: the hand-off to route-out costs more
// than it buys), tunread takes the queue over from route-out (serveTaker)
// and works as the sequential engine's loop does.
type tunRead struct {
	t   *Tunnel
	dev tunio.Device
	q   *fq.Queue[outItem]
	c   *stageCounters
	log *slog.Logger

	batch int
	slots []*outItem // bufs[i] aliases slots[i]
	bufs  [][]byte
	sizes []int

	// The inline path (inline.go): the counters of the steps it does for
	// route-out, the encrypt pool and udpsend, and its batch of datagrams.
	route, enc, send *stageCounters
	msgs             []tunio.Datagram
	peers            []*peer          // of msgs, for sendDatagrams
	poll             tunio.ReadPoller // nil: the device cannot say, and tunread never takes the queue over

	inHand int // packets read and not yet handed on, as in udpRecv

	// stand: whether a backlog stands in the device's ring, while tunread
	// has the queue taken over (the clock stops otherwise).
	stand standing
}

func newTUNRead(t *Tunnel, dev tunio.Device, q *fq.Queue[outItem], c, route, enc, send *stageCounters, log *slog.Logger) *tunRead {
	n := min(max(dev.BatchSize(), 1), maxBatch)
	s := &tunRead{t: t, dev: dev, q: q, c: c, log: log,
		batch: n, slots: make([]*outItem, n), bufs: make([][]byte, n), sizes: make([]int, n),
		route: route, enc: enc, send: send, msgs: make([]tunio.Datagram, 0, n), peers: make([]*peer, 0, n)}
	s.poll, _ = dev.(tunio.ReadPoller)
	return s
}

func (s *tunRead) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.q.Cancel() // reservations of a stage that failed mid-batch
	countHeldBatch(s.c, &s.inHand)
	s.c.lostToPanic(uint64(s.q.InHand(fq.Producer))) // a run it took as the queue's taker
	s.q.Done(fq.Producer)
	s.stand = standing{target: s.t.standAfter}
	for {
		// Publish the last batch before waiting in the system call.
		s.c.publish()
		s.route.publish()
		s.enc.publish()
		s.send.publish()
		if !s.t.inline.takeOverOut() {
			s.q.Claim(fq.Consumer) // hand the queue back, if tunread had it
			s.stand.emptied()      // the clock starts afresh at the next take-over
		} else if s.q.Taking(fq.Producer) {
			if err := s.serveTaker(); err != nil {
				return edgeErr(ctx, err)
			}
			continue
		}
		if s.q.Reservations() == 0 && !s.reserve(done) {
			return nil
		}
		if !s.q.Blocking() {
			continue // route-out handed the queue over with packets in it: work on them first
		}
		held := s.q.Reservations()
		n, err := s.t.readTUN(s.dev, s.bufs[:held], s.sizes[:held], s.c)
		s.q.Unblocked()
		s.inHand = n
		s.t.faults.hit(stageTUNRead)
		if err != nil {
			s.q.Cancel()
			return edgeErr(ctx, err)
		}
		now := s.t.aqm.now()
		for i := range n {
			if tunPacketStep(s.slots[i], s.sizes[i], s.c) {
				s.c.pass(s.sizes[i])
			}
		}
		if n <= s.t.inline.readerLimit() && s.q.Idle() && s.t.inline.out.empty() {
			err := s.inline(n)
			s.inHand = 0
			if err != nil {
				return edgeErr(ctx, err)
			}
			continue
		}
		for i := range n {
			s.t.aqm.classifyOut(i, s.slots[i])
		}
		s.q.Commit(n, now)
		s.inHand = 0
	}
}

// serveTaker goes once round the sequential engine's loop, as the
// managed queue's taker (route-out yielded it): read, waiting only when
// nothing is queued; drain the device without waiting; then route, seal
// and send one run from the queue.
func (s *tunRead) serveTaker() error {
	for !s.t.inline.out.empty() {
		// The pools finish the runs route-out gave them (microseconds of
		// work), so that none of the packets taken next overtakes them.
		runtime.Gosched()
	}
	if s.q.Len() == 0 {
		direct, err := s.readFirst()
		if err != nil || direct {
			return err
		}
	}
	for {
		if !s.poll.Readable() {
			s.stand.emptied()
			break
		}
		n, err := s.readOnce()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	n, dropped := s.q.Take(fq.Producer, s.t.aqm.now(), s.batch)
	if dropped > 0 {
		s.route.drops[DropQueueDelay].Add(uint64(dropped))
	}
	now := s.t.clock.Now()
	s.msgs, s.peers = s.msgs[:0], s.peers[:0]
	for i := range n {
		it, mark := s.q.Hand(i)
		if mark {
			markOut(it)
		}
		if s.t.routeAndSeal(it, now, s.route, s.enc) {
			s.msgs = append(s.msgs, datagramOf(it))
			s.peers = append(s.peers, it.peer)
		}
	}
	err := s.t.sendDatagrams(s.msgs, s.peers, s.send)
	s.q.Done(fq.Producer)
	return err
}

// readFirst reads a batch, waiting for one, when nothing is queued and the
// pools are empty. If no backlog stands in the device's ring (it has
// nothing more, or has not kept some for a target: standing), the batch
// goes direct (inline), as in the sequential engine (seqOutbound), and
// readFirst reports true. Otherwise it commits the batch to the managed
// queue, as readOnce.
func (s *tunRead) readFirst() (direct bool, err error) {
	n, err := s.readSlots()
	if err != nil || n == 0 {
		return false, err
	}
	if !s.stand.afterRead(s.poll, &s.t.aqm) {
		err := s.inline(n)
		s.inHand = 0
		return true, err
	}
	s.commit(n)
	return false, nil
}

// readOnce reads one batch into the managed queue and commits it, without
// waiting for room: 0 when the queue has none for a whole batch (which a
// segmentation-offloaded read needs).
func (s *tunRead) readOnce() (int, error) {
	n, err := s.readSlots()
	if err == nil {
		s.commit(n)
	}
	return n, err
}

// readSlots reads one batch into slots reserved in the managed queue
// (0 when it has no room for a whole batch) and counts what it read; the
// packets stay reserved, for commit or inline.
func (s *tunRead) readSlots() (int, error) {
	need := min(s.batch, s.q.Cap())
	if s.q.Reservations() < need {
		s.q.Cancel()
		if s.q.TryReserve(need) < need {
			s.q.Cancel()
			return 0, nil
		}
	}
	for k := range need {
		s.slots[k] = s.q.Reserved(k)
		s.bufs[k] = s.slots[k].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
	}
	n, err := s.t.readTUN(s.dev, s.bufs[:need], s.sizes[:need], s.c)
	s.inHand = n
	s.t.faults.hit(stageTUNRead)
	if err != nil {
		s.q.Cancel()
		return 0, err
	}
	for i := range n {
		if tunPacketStep(s.slots[i], s.sizes[i], s.c) {
			s.c.pass(s.sizes[i])
		}
	}
	return n, nil
}

// commit queues the n packets readSlots read.
func (s *tunRead) commit(n int) {
	now := s.t.aqm.now()
	for i := range n {
		s.t.aqm.classifyOut(i, s.slots[i])
	}
	s.q.Commit(n, now)
	s.inHand = 0
}

// inline takes a batch of n packets through the route-out, encrypt and
// udpsend steps itself, in their slots, and keeps the slots for the next
// read (inline.go).
func (s *tunRead) inline(n int) error {
	// The clock once per batch, as the sequential engine reads it.
	now := s.t.clock.Now()
	s.msgs, s.peers = s.msgs[:0], s.peers[:0]
	for _, it := range s.slots[:n] {
		if it.drop != dropNone {
			continue // too big, counted
		}
		if s.t.routeAndSeal(it, now, s.route, s.enc) {
			s.msgs = append(s.msgs, datagramOf(it))
			s.peers = append(s.peers, it.peer)
		}
	}
	return s.t.sendDatagrams(s.msgs, s.peers, s.send)
}

// reserve reserves a whole batch of slots in the managed queue (or its
// capacity, if smaller) and points bufs at them, with room for a full
// inner packet after the header; the tag's room stays out of the device's
// reach. It waits for room if it must: a device with segmentation
// offload splits one read into up to a batch of packets, and fewer
// buffers would lose the rest of a large one.
func (s *tunRead) reserve(done <-chan struct{}) bool {
	need := min(s.batch, s.q.Cap())
	if s.q.TryReserve(need) < need {
		s.q.Cancel()
		if !s.q.Reserve(done, need) {
			return false
		}
	}
	for k := range need {
		s.slots[k] = s.q.Reserved(k)
		s.bufs[k] = s.slots[k].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
	}
	return true
}

// encryptWorker is one of the encrypt pool's N workers: it seals packets
// from its queue straight into its output queue, in the order it got
// them, and waits when its output is full.
type encryptWorker struct {
	t   *Tunnel
	in  *spsc.Queue[outItem]
	out *spsc.Queue[outItem]
	c   *stageCounters
	log *slog.Logger
}

func (w *encryptWorker) Serve(ctx context.Context) error {
	w.log.Debug("stage start")
	defer w.log.Debug("stage stop")
	done := ctx.Done()
	if !workerRecover(done, w.in, w.out, w.c) {
		return nil
	}
	for {
		src, ok := workerNext(done, w.in, w.out, w.c)
		if !ok {
			return nil
		}
		w.t.faults.hit(stageEncrypt)
		dst, ok := reserve(done, w.out, w.c)
		if !ok {
			return nil
		}
		sealStep(dst, src)
		w.c.pass(int(dst.pkt.MsgLen))
		w.out.Commit()
		w.in.Done()
	}
}

// udpSend collects sealed datagrams from the encrypt workers in dispatch
// order and sends them in batches straight from their queues: it waits for
// the next one, then takes those already there in order, up to a batch.
type udpSend struct {
	t       *Tunnel
	workers []*spsc.Queue[outItem]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger

	batch int
	msgs  []tunio.Datagram
	peers []*peer // of msgs, for sendDatagrams
}

func newUDPSend(t *Tunnel, workers []*spsc.Queue[outItem], c *stageCounters, log *slog.Logger) *udpSend {
	n := min(max(t.udp.BatchSize(), 1), maxBatch)
	return &udpSend{t: t, workers: workers, rr: newRoundRobin(len(workers), poolRun(workers[0].Cap())),
		c: c, log: log, batch: n, msgs: make([]tunio.Datagram, 0, n), peers: make([]*peer, 0, n)}
}

func (s *udpSend) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.t.inline.out.done(abandonInHand(s.c, s.workers...))
	for {
		releaseAll(s.workers)
		p, ok := s.workers[s.rr.next].Next(done)
		if !ok {
			return nil
		}
		s.rr.advance()
		s.msgs, s.peers = s.msgs[:0], s.peers[:0]
		taken := 1
		for ; ; taken++ {
			if p.drop == dropNone { // a dropped slot was counted by its worker
				s.msgs = append(s.msgs, datagramOf(p))
				s.peers = append(s.peers, p.peer)
			}
			if taken == s.batch {
				break
			}
			if p = s.workers[s.rr.next].TryNext(); p == nil {
				break
			}
			s.rr.advance()
		}
		s.t.faults.hit(stageUDPSend)
		err := s.t.sendDatagrams(s.msgs, s.peers, s.c)
		s.c.publish()
		for _, q := range s.workers {
			q.Done()
		}
		s.t.inline.out.done(taken)
		if err != nil {
			return edgeErr(ctx, err)
		}
	}
}
