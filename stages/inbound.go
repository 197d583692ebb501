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

// udpRecv reads datagrams in batches straight into the slots of the
// inbound managed queue, hands handshake messages to the handshake workers,
// and commits the transport messages to the managed queue, timestamped and
// sorted by sender, for dispatch-in to take. It does nothing else, so
// that it is back in the next read at once: the socket's buffer, which no
// one manages, stays short, and the backlog forms in the managed queue
// instead, where it is dropped from before any decryption is spent on
// it.
//
// Full queues: a managed queue without a free slot makes udpRecv wait
// (the socket's buffer then fills and drops, as a network would); a full
// handshake queue drops the message and counts it, so a handshake flood
// never stalls data.
//
// A small batch read while the managed queue and the pools hold nothing
// is the exception (inline.go): it goes through the remaining steps here,
// without the hand-offs. And while the spread decision says every batch
// goes inline, udprecv takes the queue over from dispatch-in
// (serveTaker) and works as the sequential engine's loop does.
type udpRecv struct {
	t          *Tunnel
	conn       tunio.UDPConn
	q          *fq.Queue[inItem]
	handshakes chan handshakeMsg
	c          *stageCounters
	log        *slog.Logger

	batch int
	slots []*inItem // the batch's reserved slots; msgs[i].Buf aliases slots[i]
	msgs  []tunio.Datagram

	// The inline path (inline.go): the counters of the steps it does for
	// the decrypt pool, route-in and tunwrite, and its batch of inner
	// packets.
	dec, route, write *stageCounters
	bufs              [][]byte
	batchIn           []*inItem       // a run taken as the queue's taker
	try               tunio.TryReader // nil: the socket cannot, and udprecv does not take the queue over

	// inHand is how many datagrams the current batch holds between the
	// read and their hand-off: if the stage fails meanwhile, its successor
	// counts them as lost.
	inHand int

	// stand: whether a backlog stands in the socket's buffer, while
	// udprecv has the queue taken over (the clock stops otherwise).
	stand standing
}

func newUDPRecv(t *Tunnel, conn tunio.UDPConn, q *fq.Queue[inItem], hs chan handshakeMsg, c, dec, route, write *stageCounters, log *slog.Logger) *udpRecv {
	n := min(max(conn.BatchSize(), 1), maxBatch)
	s := &udpRecv{t: t, conn: conn, q: q, handshakes: hs, c: c, log: log,
		batch: n, slots: make([]*inItem, n), msgs: make([]tunio.Datagram, n),
		dec: dec, route: route, write: write, bufs: make([][]byte, 0, n), batchIn: make([]*inItem, 0, n)}
	s.try, _ = conn.(tunio.TryReader)
	return s
}

func (s *udpRecv) Serve(ctx context.Context) error {
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
		s.dec.publish()
		s.route.publish()
		s.write.publish()
		if !s.t.inline.takeOverIn() {
			s.q.Claim(fq.Consumer) // hand the queue back, if udprecv had it
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
			continue // dispatch-in handed the queue over with packets in it: work on them first
		}
		held := s.q.Reservations()
		n, err := s.conn.ReadBatch(s.msgs[:held])
		s.q.Unblocked()
		s.inHand = n
		s.t.faults.hit(stageUDPRecv)
		if err != nil {
			s.q.Cancel()
			return edgeErr(ctx, err)
		}
		now, wall := s.t.aqm.nowWall()
		for i := range n {
			s.take(s.slots[i], &s.msgs[i])
		}
		if n <= s.t.inline.readerLimit() && s.q.Idle() && s.t.inline.in.empty() {
			err := s.inline(n)
			s.inHand = 0
			if err != nil {
				return edgeErr(ctx, err)
			}
			continue
		}
		for i := range n {
			s.t.classifyIn(i, s.slots[i], kernelWait(wall, s.msgs[i].Stamp))
		}
		s.q.Commit(n, now)
		s.inHand = 0
	}
}

// serveTaker goes once round the sequential engine's loop, as the
// managed queue's taker (dispatch-in yielded it): read, waiting only when
// nothing is queued; drain the socket without waiting; then open, check
// and write one run from the queue.
func (s *udpRecv) serveTaker() error {
	for !s.t.inline.in.empty() {
		// The pools finish the runs dispatch-in gave them (microseconds
		// of work), so that none of the packets taken next overtakes them.
		runtime.Gosched()
	}
	// Drain the socket while reads fill every slot offered: a read that
	// came back short found it empty.
	more := true
	if s.q.Len() == 0 {
		full, err := s.readOnce(true)
		if err != nil {
			return err
		}
		if !full && s.q.Len() == 0 {
			return nil // the batch went direct (readOnce), or none came
		}
		more = full
	}
	for more {
		full, err := s.readOnce(false)
		if err != nil {
			return err
		}
		more = full
	}
	n, dropped := s.q.Take(fq.Producer, s.t.aqm.now(), s.batch)
	if dropped > 0 {
		s.dec.drops[DropQueueDelay].Add(uint64(dropped))
	}
	s.batchIn = s.batchIn[:0]
	for i := range n {
		it, mark := s.q.Hand(i)
		if mark {
			markIn(it)
		}
		s.batchIn = append(s.batchIn, it)
	}
	err := s.t.openAcceptWrite(s.batchIn, &s.bufs, s.dec, s.route, s.write)
	s.q.Done(fq.Producer)
	return err
}

// readOnce reads one batch of datagrams into the managed queue and commits
// its transport messages, waiting for one if wait, else not, and reports
// whether it filled every slot it offered (more may be waiting): false
// when none was ready, or the queue has no free slot. A batch read
// waiting that does not fill the slots offered, or while no backlog
// stands in the socket's buffer (standing), goes direct instead (inline),
// and the queue stays empty: as in the sequential engine
// (seqInbound.read).
func (s *udpRecv) readOnce(wait bool) (bool, error) {
	if s.q.Reservations() == 0 && s.q.TryReserve(s.batch) == 0 {
		return false, nil
	}
	for i := range s.q.Reservations() {
		s.slots[i] = s.q.Reserved(i)
		s.msgs[i].Buf = s.slots[i].pkt.Buf[:]
	}
	held := s.q.Reservations()
	var n int
	var err error
	if wait {
		n, err = s.conn.ReadBatch(s.msgs[:held])
	} else {
		n, err = s.try.TryReadBatch(s.msgs[:held])
	}
	if err != nil || n == 0 {
		s.q.Cancel()
		return false, err
	}
	s.inHand = n
	s.t.faults.hit(stageUDPRecv)
	for i := range n {
		s.take(s.slots[i], &s.msgs[i])
	}
	if s.stand.direct(wait, n < held, &s.t.aqm) {
		// Nothing was queued (serveTaker waits only then), the pools are
		// empty, and no backlog stands in the socket's buffer: the batch
		// goes direct.
		err := s.inline(n)
		s.inHand = 0
		return false, err
	}
	now, wall := s.t.aqm.nowWall()
	for i := range n {
		s.t.classifyIn(i, s.slots[i], kernelWait(wall, s.msgs[i].Stamp))
	}
	s.q.Commit(n, now)
	s.inHand = 0
	return n == held, nil
}

// reserve reserves up to a batch of slots in the managed queue and points
// msgs at them. It waits only while there is not a single free slot.
func (s *udpRecv) reserve(done <-chan struct{}) bool {
	if s.q.TryReserve(s.batch) == 0 {
		if !s.q.Reserve(done, 1) {
			return false
		}
		s.q.TryReserve(s.batch - 1)
	}
	for i := range s.q.Reservations() {
		s.slots[i] = s.q.Reserved(i)
		s.msgs[i].Buf = s.slots[i].pkt.Buf[:]
	}
	return true
}

// inline takes a batch of n datagrams through the decrypt, route-in and
// tunwrite steps itself, in their slots, and keeps the slots for the next
// read (inline.go).
func (s *udpRecv) inline(n int) error {
	err := s.t.openAcceptWrite(s.slots[:n], &s.bufs, s.dec, s.route, s.write)
	if s.q.Reservations() < s.batch {
		// A short reservation (the queue was filling): give it back and
		// reserve afresh, for a whole batch if there is room now.
		s.q.Cancel()
	}
	return err
}

// take fills in the slot of one datagram read: a transport message goes on
// to the managed queue; anything else leaves the slot marked skipped.
func (s *udpRecv) take(it *inItem, m *tunio.Datagram) {
	it.peer, it.kp, it.drop = nil, nil, dropSkip
	if m.N == 0 || m.N > wire.MaxMessageSize {
		s.t.badSize(m, s.c)
		return
	}
	it.pkt.MsgLen = uint16(m.N)
	it.src, it.local, it.ecn = m.Addr, m.Local, wire.ECN(m.ECN)
	if !s.t.classifyInbound(it, s.handshakes, s.c) {
		return
	}
	it.drop = dropNone
	s.c.pass(m.N)
}

// decryptWorker is one of the decrypt pool's N workers: it opens transport
// messages from its queue straight into its output queue, in the order it
// got them, and waits when its output is full.
type decryptWorker struct {
	t   *Tunnel
	in  *spsc.Queue[inItem]
	out *spsc.Queue[inItem]
	c   *stageCounters
	log *slog.Logger
}

func (w *decryptWorker) Serve(ctx context.Context) error {
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
		w.t.faults.hit(stageDecrypt)
		dst, ok := reserve(done, w.out, w.c)
		if !ok {
			return nil
		}
		switch {
		case src.drop != dropNone:
			dst.drop = src.drop // counted by udprecv
		default:
			if r := w.t.openStep(dst, src); r != dropNone {
				dst.drop = r
				w.c.drop(r)
			} else {
				w.c.pass(int(dst.pkt.InnerLen))
			}
		}
		w.out.Commit()
		w.in.Done()
	}
}

// tunWrite writes inner packets to the TUN device in batches, straight
// from its queue: it waits for one packet, then takes whatever else is
// already there, up to a batch, so a busy tunnel makes one system call per
// batch and an idle one adds no delay.
type tunWrite struct {
	t   *Tunnel
	dev tunio.Device
	in  *spsc.Queue[tunPacket]
	c   *stageCounters
	log *slog.Logger

	batch int
	bufs  [][]byte
}

func newTUNWrite(t *Tunnel, dev tunio.Device, in *spsc.Queue[tunPacket], c *stageCounters, log *slog.Logger) *tunWrite {
	n := min(max(dev.BatchSize(), 1), maxBatch)
	return &tunWrite{t: t, dev: dev, in: in, c: c, log: log, batch: n, bufs: make([][]byte, 0, n)}
}

func (s *tunWrite) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.t.inline.in.done(abandonInHand(s.c, s.in))
	for {
		p, ok := s.in.Next(done)
		if !ok {
			return nil
		}
		s.bufs = append(s.bufs[:0], p.Buf[:wire.InnerOffset+int(p.InnerLen)])
		for len(s.bufs) < s.batch {
			if p = s.in.TryNext(); p == nil {
				break
			}
			s.bufs = append(s.bufs, p.Buf[:wire.InnerOffset+int(p.InnerLen)])
		}
		s.t.faults.hit(stageTUNWrite)
		err := s.t.writeTUN(s.dev, s.bufs, s.c)
		s.c.publish()
		s.in.Done()
		s.t.inline.in.done(len(s.bufs))
		if err != nil {
			return edgeErr(ctx, err)
		}
	}
}
