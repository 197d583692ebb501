package stages

import (
	"context"
	"log/slog"
	"time"

	"pipeguard/stages/fq"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// The sequential baseline: one goroutine per direction calls the same step
// functions as the pipeline, inline, on packets in the slots of its
// direction's managed queue, with no hand-offs on the data path.
// Handshake messages still go to the handshake workers, and timers to the
// timer actor: they are the control plane, the same in both engines.
//
// Each loop reads into the managed queue and works on one run from it at
// a time. It waits in a read only when the queue holds nothing. With
// queue management on, once a backlog stands in the kernel's queue (the
// socket's buffer, the TUN device's queue: standing), it also drains that
// queue into the managed queue before each run, without waiting
// (tunio.TryReader, tunio.ReadPoller), so that the backlog stands where
// the controller sees it and a sparse flow's packet can leave ahead of
// it; the kernel's queue then holds at most what arrives during one run.
// Until a backlog stands, and without queue management, a loop reads a
// batch and works on it, as a loop without a queue would.

// seqInbound reads datagrams into the inbound managed queue, and for each
// run it takes: open, accept; then writes the run's inner packets to the
// TUN device.
type seqInbound struct {
	t   *Tunnel
	q   *fq.Queue[inItem]
	c   *stageCounters
	log *slog.Logger
	try tunio.TryReader // nil: no draining

	batch int
	slots []*inItem
	msgs  []tunio.Datagram
	bufs  [][]byte

	inHand int // datagrams read and not yet in the queue, counted as lost if the loop fails

	stand standing // whether a backlog stands in the socket's buffer
}

func newSeqInbound(t *Tunnel, c *stageCounters, log *slog.Logger) *seqInbound {
	n := min(max(t.udp.BatchSize(), 1), maxBatch)
	s := &seqInbound{t: t, q: t.aqm.in, c: c, log: log,
		batch: n, slots: make([]*inItem, n), msgs: make([]tunio.Datagram, n), bufs: make([][]byte, 0, n)}
	if tr, ok := t.udp.(tunio.TryReader); ok && !t.cfg.NoQueueManagement {
		s.try = tr
	}
	return s
}

func (s *seqInbound) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	t := s.t
	s.q.Cancel()
	s.c.lostToPanic(uint64(s.q.InHand(fq.Consumer)))
	s.q.Done(fq.Consumer)
	countHeldBatch(s.c, &s.inHand)
	s.stand = standing{target: t.standAfter}
	if t.cfg.NoQueueManagement {
		return s.serveDirect(ctx)
	}
	for {
		s.c.publish()
		// Drain the socket while reads fill every slot offered: a read
		// that came back short found it empty.
		more := s.try != nil
		if s.q.Idle() {
			full, err := s.read(false)
			if err != nil {
				return edgeErr(ctx, err)
			}
			if s.q.Idle() && !full {
				continue // the batch went direct (read)
			}
			more = more && full
		}
		for more {
			full, err := s.read(true)
			if err != nil {
				return edgeErr(ctx, err)
			}
			more = full
		}
		n, dropped := s.q.Take(fq.Consumer, t.aqm.now(), s.batch)
		if dropped > 0 {
			s.c.drops[DropQueueDelay].Add(uint64(dropped))
		}
		now := t.clock.Now()
		s.bufs = s.bufs[:0]
		for i := range n {
			it, mark := s.q.Hand(i)
			if mark {
				markIn(it)
			}
			s.work(it, now)
		}
		if err := s.write(); err != nil {
			return edgeErr(ctx, err)
		}
		s.q.Done(fq.Consumer)
	}
}

// serveDirect is the loop without queue management: read a batch into
// the managed queue's slots and work on it there, the queue only lending
// its slots, as a loop without a queue would.
func (s *seqInbound) serveDirect(ctx context.Context) error {
	t := s.t
	for {
		s.c.publish()
		s.inHand = 0
		if s.q.Reservations() == 0 {
			s.q.TryReserve(s.batch) // nothing is ever queued: every slot is free
			for i := range s.q.Reservations() {
				s.slots[i] = s.q.Reserved(i)
				s.msgs[i].Buf = s.slots[i].pkt.Buf[:]
			}
		}
		n, err := t.udp.ReadBatch(s.msgs[:s.q.Reservations()])
		if err != nil {
			return edgeErr(ctx, err)
		}
		s.inHand = n
		t.faults.hit(stageUDPRecv)
		if err := s.workRead(n); err != nil {
			return edgeErr(ctx, err)
		}
	}
}

// workRead works on the n datagrams just read, in their slots, and writes
// their inner packets: the loop without queue management, and a batch
// that goes direct (read).
func (s *seqInbound) workRead(n int) error {
	now := s.t.clock.Now()
	s.bufs = s.bufs[:0]
	for i := range n {
		if s.take(s.slots[i], &s.msgs[i]) {
			s.work(s.slots[i], now)
		}
	}
	return s.write()
}

// take fills in the slot of one datagram read and reports whether it is
// a transport message; anything else is handed to the handshake workers or
// dropped, and its slot marked skipped.
func (s *seqInbound) take(it *inItem, m *tunio.Datagram) bool {
	t := s.t
	it.peer, it.kp, it.drop = nil, nil, dropSkip
	if m.N == 0 || m.N > wire.MaxMessageSize {
		t.badSize(m, s.c)
		return false
	}
	it.pkt.MsgLen, it.src, it.local, it.ecn = uint16(m.N), m.Addr, m.Local, wire.ECN(m.ECN)
	if !t.classifyInbound(it, t.handshakes, s.c) {
		return false
	}
	it.drop = dropNone
	return true
}

// work opens and checks one transport message in its slot, and adds its
// inner packet to the batch to write.
func (s *seqInbound) work(it *inItem, now time.Time) {
	t := s.t
	if r := t.openStep(it, it); r != dropNone {
		s.c.drop(r)
		return
	}
	if r := t.acceptStep(it, now); r != dropNone {
		s.c.drop(r)
		return
	}
	if it.pkt.InnerLen == 0 {
		s.c.keepalives.Add(1)
		return
	}
	s.bufs = append(s.bufs, it.pkt.Buf[:wire.InnerOffset+int(it.pkt.InnerLen)])
}

// write writes the batch of inner packets to the TUN device.
func (s *seqInbound) write() error {
	if len(s.bufs) == 0 {
		return nil
	}
	return s.t.writeTUN(s.t.tun, s.bufs, s.c)
}

// read reads a batch of datagrams into the managed queue, waiting for
// one unless try, and reports whether it filled every free slot it
// offered (more may be waiting): false, with no error, when try found
// none ready or the queue has no free slot. Handshake messages go to the
// handshake workers, malformed datagrams are dropped. A batch read
// waiting (the queue idle: Serve waits only then) that does not fill the
// slots offered, or while no backlog stands in the socket's buffer
// (standing), goes direct: read works on it and writes it, and the
// queue stays idle.
func (s *seqInbound) read(try bool) (bool, error) {
	t := s.t
	k := s.q.TryReserve(s.batch)
	if k == 0 {
		return false, nil
	}
	for i := range k {
		s.slots[i] = s.q.Reserved(i)
		s.msgs[i].Buf = s.slots[i].pkt.Buf[:]
	}
	var n int
	var err error
	if try {
		n, err = s.try.TryReadBatch(s.msgs[:k])
	} else {
		n, err = t.udp.ReadBatch(s.msgs[:k])
	}
	if err != nil || n == 0 {
		s.q.Cancel()
		return false, err
	}
	s.inHand = n
	t.faults.hit(stageUDPRecv)
	if s.stand.direct(!try, n < k, &t.aqm) {
		// Nothing was queued and no backlog stands in the socket's
		// buffer (it is empty, or has not stayed full for a target:
		// standing), so the batch needs no flow's turn and no
		// controller. It is worked on where it was read, as without
		// queue management (and as the pipeline's inline path does),
		// sparing the queue's bookkeeping.
		err := s.workRead(n) // before the slots go back: bufs point into them
		s.q.Cancel()
		s.inHand = 0
		return false, err
	}
	now, wall := t.aqm.nowWall()
	for i := range n {
		s.take(s.slots[i], &s.msgs[i])
		t.classifyIn(i, s.slots[i], kernelWait(wall, s.msgs[i].Stamp))
	}
	s.q.Commit(n, now)
	s.inHand = 0
	return n == k, nil
}

// seqOutbound reads inner packets into the outbound managed queue, and for
// each run it takes: route, seal; then sends the run's datagrams.
type seqOutbound struct {
	t    *Tunnel
	q    *fq.Queue[outItem]
	c    *stageCounters
	log  *slog.Logger
	poll tunio.ReadPoller // nil: no draining

	batch int
	slots []*outItem
	bufs  [][]byte
	sizes []int
	msgs  []tunio.Datagram
	peers []*peer // of msgs, for sendDatagrams

	inHand int // packets read and not yet in the queue, as in seqInbound

	stand standing // whether a backlog stands in the TUN device's ring
}

func newSeqOutbound(t *Tunnel, c *stageCounters, log *slog.Logger) *seqOutbound {
	n := min(max(t.tun.BatchSize(), 1), maxBatch)
	s := &seqOutbound{t: t, q: t.aqm.out, c: c, log: log,
		batch: n, slots: make([]*outItem, n), bufs: make([][]byte, n), sizes: make([]int, n), msgs: make([]tunio.Datagram, 0, n), peers: make([]*peer, 0, n)}
	if p, ok := t.tun.(tunio.ReadPoller); ok && !t.cfg.NoQueueManagement {
		s.poll = p
	}
	return s
}

func (s *seqOutbound) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	t := s.t
	s.q.Cancel()
	s.c.lostToPanic(uint64(s.q.InHand(fq.Consumer)))
	s.q.Done(fq.Consumer)
	countHeldBatch(s.c, &s.inHand)
	s.stand = standing{target: t.standAfter}
	if t.cfg.NoQueueManagement {
		return s.serveDirect(ctx)
	}
	for {
		s.c.publish()
		if s.q.Idle() {
			n, err := s.readSlots()
			if err != nil {
				return edgeErr(ctx, err)
			}
			if n > 0 && s.poll != nil && !s.stand.afterRead(s.poll, &s.t.aqm) {
				// Nothing was queued and no backlog stands in the
				// device's ring: direct, as seqInbound.read says why.
				if err := s.direct(n); err != nil {
					return edgeErr(ctx, err)
				}
				continue
			}
			s.commit(n)
		}
		for s.poll != nil {
			if !s.poll.Readable() {
				s.stand.emptied()
				break
			}
			n, err := s.read()
			if err != nil {
				return edgeErr(ctx, err)
			}
			if n == 0 {
				break
			}
		}
		n, dropped := s.q.Take(fq.Consumer, t.aqm.now(), s.batch)
		if dropped > 0 {
			s.c.drops[DropQueueDelay].Add(uint64(dropped))
		}
		now := t.clock.Now()
		s.msgs, s.peers = s.msgs[:0], s.peers[:0]
		for i := range n {
			it, mark := s.q.Hand(i)
			if mark {
				markOut(it)
			}
			s.work(it, now)
		}
		if err := t.sendDatagrams(s.msgs, s.peers, s.c); err != nil {
			return edgeErr(ctx, err)
		}
		s.q.Done(fq.Consumer)
	}
}

// serveDirect is the loop without queue management: read a batch into
// the managed queue's slots and work on it there, the queue only lending
// its slots, as a loop without a queue would.
func (s *seqOutbound) serveDirect(ctx context.Context) error {
	t := s.t
	need := min(s.batch, s.q.Cap())
	for {
		s.c.publish()
		s.inHand = 0
		if s.q.Reservations() == 0 {
			s.q.TryReserve(need) // nothing is ever queued: every slot is free
			for i := range need {
				s.slots[i] = s.q.Reserved(i)
				s.bufs[i] = s.slots[i].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
			}
		}
		n, err := t.readTUN(t.tun, s.bufs[:need], s.sizes[:need], s.c)
		if err != nil {
			return edgeErr(ctx, err)
		}
		s.inHand = n
		t.faults.hit(stageTUNRead)
		if err := s.workRead(n); err != nil {
			return edgeErr(ctx, err)
		}
	}
}

// workRead routes and seals the n packets just read, in their slots, and
// sends them: the loop without queue management, and a batch that goes
// direct.
func (s *seqOutbound) workRead(n int) error {
	now := s.t.clock.Now()
	s.msgs, s.peers = s.msgs[:0], s.peers[:0]
	for i := range n {
		if tunPacketStep(s.slots[i], s.sizes[i], s.c) {
			s.work(s.slots[i], now)
		}
	}
	return s.t.sendDatagrams(s.msgs, s.peers, s.c)
}

// work routes and seals one packet in its slot, and adds its datagram to
// the batch to send.
func (s *seqOutbound) work(it *outItem, now time.Time) {
	r, staged := s.t.routeStep(it, now)
	if r != dropNone {
		s.c.drop(r)
		return
	}
	if staged {
		return
	}
	sealStep(it, it)
	s.msgs = append(s.msgs, datagramOf(it))
	s.peers = append(s.peers, it.peer)
}

// read reads a batch of inner packets into the managed queue, waiting for
// one, and returns how many it read: 0 when the queue has no room for a
// whole batch (a segmentation-offloaded read needs one). Call it without
// waiting only when the device is readable.
func (s *seqOutbound) read() (int, error) {
	n, err := s.readSlots()
	if err == nil {
		s.commit(n)
	}
	return n, err
}

// readSlots reads a batch of inner packets into slots it reserves in the
// managed queue, and returns how many it read, still reserved (commit
// queues them, direct works on them), or 0 with nothing reserved.
func (s *seqOutbound) readSlots() (int, error) {
	t := s.t
	need := min(s.batch, s.q.Cap())
	if s.q.TryReserve(need) < need {
		s.q.Cancel()
		return 0, nil
	}
	for i := range need {
		s.slots[i] = s.q.Reserved(i)
		s.bufs[i] = s.slots[i].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
	}
	n, err := t.readTUN(t.tun, s.bufs[:need], s.sizes[:need], s.c)
	if err != nil {
		s.q.Cancel()
		return 0, err
	}
	if n == 0 {
		s.q.Cancel()
	}
	s.inHand = n
	t.faults.hit(stageTUNRead)
	return n, nil
}

// commit queues the n packets readSlots read.
func (s *seqOutbound) commit(n int) {
	if n == 0 {
		return
	}
	t := s.t
	now := t.aqm.now()
	for i := range n {
		tunPacketStep(s.slots[i], s.sizes[i], s.c)
		t.aqm.classifyOut(i, s.slots[i])
	}
	s.q.Commit(n, now)
	s.inHand = 0
}

// direct works on the n packets readSlots read, in their slots, and
// sends them, without queueing them.
func (s *seqOutbound) direct(n int) error {
	err := s.workRead(n)
	s.q.Cancel()
	s.inHand = 0
	return err
}
