package stages

import (
	"context"
	"log/slog"

	"pipeguard/stages/spsc"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// udpRecv reads datagrams in batches straight into the decrypt workers'
// queues, in the workers' turns (roundRobin), and hands handshake
// messages to the handshake actor.
//
// Full queues: a full decrypt queue makes udpRecv wait (backpressure: the
// socket's buffer then fills and drops, as a network would); a full
// handshake queue drops the message and counts it, so a handshake flood
// never stalls data.
type udpRecv struct {
	t          *Tunnel
	conn       tunio.UDPConn
	workers    []*spsc.Queue[inItem]
	handshakes chan handshakeMsg
	rr         roundRobin
	c          *stageCounters
	log        *slog.Logger

	batch int
	slots []*inItem // the batch's reserved slots; msgs[i].Buf aliases slots[i]
	msgs  []tunio.Datagram
	used  []int // per worker: slots of this batch that hold a datagram read
	turn  []int // per worker: scratch for reserveTurns

	// The inline path (inline.go): the counters of the steps it does for
	// the decrypt pool, route-in and tunwrite, and its batch of inner
	// packets.
	dec, route, write *stageCounters
	bufs              [][]byte
	// held is how many slots the last reserve got that are still
	// reserved: an inline batch gives none away, so the next read reuses
	// them (and their warm cache lines) without reserving again.
	held int

	// inHand is how many datagrams the current batch holds between the
	// read and their hand-off: if the stage fails meanwhile, its successor
	// counts them as lost.
	inHand int
}

func newUDPRecv(t *Tunnel, conn tunio.UDPConn, workers []*spsc.Queue[inItem], hs chan handshakeMsg, c, dec, route, write *stageCounters, log *slog.Logger) *udpRecv {
	n := min(max(conn.BatchSize(), 1), maxBatch)
	return &udpRecv{t: t, conn: conn, workers: workers, handshakes: hs, c: c, log: log, rr: newRoundRobin(len(workers), poolRun(workers[0].Cap())),
		batch: n, slots: make([]*inItem, n), msgs: make([]tunio.Datagram, n), used: make([]int, len(workers)), turn: make([]int, len(workers)),
		dec: dec, route: route, write: write, bufs: make([][]byte, 0, n)}
}

func (s *udpRecv) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for _, q := range s.workers {
		q.Cancel() // reservations of a stage that failed mid-batch
	}
	s.held = 0
	countHeldBatch(s.c, &s.inHand)
	for {
		// Publish the last batch before waiting in the system call.
		flushAll(s.workers)
		s.c.publish()
		s.dec.publish()
		s.route.publish()
		s.write.publish()
		if s.held == 0 {
			k, ok := s.reserve(done)
			if !ok {
				return nil
			}
			s.held = k
		}
		n, err := s.conn.ReadBatch(s.msgs[:s.held])
		s.inHand = n
		s.t.faults.hit(stageUDPRecv)
		if err != nil {
			for _, q := range s.workers {
				q.Cancel()
			}
			s.held = 0
			return edgeErr(ctx, err)
		}
		for i := range n {
			s.take(s.slots[i], &s.msgs[i])
		}
		if n <= s.t.inline.limit() && s.t.inline.in.empty() {
			err := s.inline(n)
			s.inHand = 0
			if err != nil {
				return edgeErr(ctx, err)
			}
			continue
		}
		clear(s.used)
		pos := s.rr // advanced for good once the batch is handed on
		for range n {
			s.used[pos.next]++
			pos.advance()
		}
		for i, q := range s.workers {
			q.CommitFirst(s.used[i])
		}
		s.t.inline.in.add(n)
		s.inHand = 0
		s.held = 0
		s.rr = pos
	}
}

// reserve reserves up to a batch of slots, in the workers' turns from
// rr, and points msgs at them. It waits only for the first.
func (s *udpRecv) reserve(done <-chan struct{}) (int, bool) {
	k, ok := reserveTurns(done, s.workers, s.rr, s.batch, s.c, s.used, s.turn, s.slots)
	for i := range k {
		s.msgs[i].Buf = s.slots[i].pkt.Buf[:]
	}
	return k, ok
}

// inline takes a batch of n datagrams through the decrypt, route-in and
// tunwrite steps itself, in their slots, and keeps the slots for the next
// read (inline.go).
func (s *udpRecv) inline(n int) error {
	now := s.t.clock.Now()
	s.bufs = s.bufs[:0]
	for _, it := range s.slots[:n] {
		if it.drop != dropNone {
			continue // a handshake message, or dropped and counted
		}
		if r := s.t.openStep(it, it); r != dropNone {
			s.dec.drop(r)
			continue
		}
		s.dec.pass(int(it.pkt.InnerLen))
		if s.t.acceptOne(it, now, s.route) {
			s.route.pass(int(it.pkt.InnerLen))
			s.bufs = append(s.bufs, it.pkt.Buf[:wire.InnerOffset+int(it.pkt.InnerLen)])
		}
	}
	var err error
	if len(s.bufs) > 0 {
		err = s.t.writeTUN(s.t.tun, s.bufs, s.write)
	}
	if s.held < s.batch {
		// A short reservation (the queues were filling): give it back
		// and reserve afresh, for a whole batch if there is room now.
		for _, q := range s.workers {
			q.Cancel()
		}
		s.held = 0
	}
	return err
}

// take fills in the slot of one datagram read: a transport message goes on
// to its decrypt worker; anything else leaves the slot marked skipped.
func (s *udpRecv) take(it *inItem, m *tunio.Datagram) {
	it.peer, it.kp, it.drop = nil, nil, dropSkip
	if m.N == 0 || m.N > wire.MaxMessageSize {
		s.t.badSize(m, s.c)
		return
	}
	it.pkt.MsgLen = uint16(m.N)
	it.src, it.local = m.Addr, m.Local
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
