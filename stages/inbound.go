package stages

import (
	"context"
	"log/slog"

	"pipeguard/stages/spsc"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// udpRecv reads datagrams in batches straight into the decrypt workers'
// queues, datagram i of the stream into worker i mod N, and hands
// handshake messages to the handshake actor.
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

	// inHand is how many datagrams the current batch holds between the
	// read and their hand-off: if the stage fails meanwhile, its successor
	// counts them as lost.
	inHand int
}

func newUDPRecv(t *Tunnel, conn tunio.UDPConn, workers []*spsc.Queue[inItem], hs chan handshakeMsg, c *stageCounters, log *slog.Logger) *udpRecv {
	n := min(max(conn.BatchSize(), 1), maxBatch)
	return &udpRecv{t: t, conn: conn, workers: workers, handshakes: hs, c: c, log: log,
		batch: n, slots: make([]*inItem, n), msgs: make([]tunio.Datagram, n), used: make([]int, len(workers))}
}

func (s *udpRecv) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for _, q := range s.workers {
		q.Cancel() // reservations of a stage that failed mid-batch
	}
	countHeldBatch(s.c, &s.inHand)
	for {
		// Publish the last batch before waiting in the system call.
		flushAll(s.workers)
		s.c.publish()
		k, ok := s.reserve(done)
		if !ok {
			return nil
		}
		n, err := s.conn.ReadBatch(s.msgs[:k])
		s.inHand = n
		s.t.faults.hit(stageUDPRecv)
		if err != nil {
			for _, q := range s.workers {
				q.Cancel()
			}
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		clear(s.used)
		w := s.rr.next
		for i := range n {
			s.take(s.slots[i], &s.msgs[i])
			s.used[w]++
			if w++; w == len(s.workers) {
				w = 0
			}
		}
		for i, q := range s.workers {
			q.CommitFirst(s.used[i])
		}
		s.inHand = 0
		s.rr.next = (s.rr.next + n) % len(s.workers)
	}
}

// reserve reserves up to a batch of slots, round-robin over the workers
// from rr.next, and points msgs at them. It waits only for the first.
func (s *udpRecv) reserve(done <-chan struct{}) (int, bool) {
	w := s.rr.next
	for k := range s.batch {
		var p *inItem
		if k == 0 {
			var ok bool
			if p, ok = reserveIn(done, s.workers, w, s.c); !ok {
				return 0, false
			}
		} else if p = s.workers[w].TryReserve(); p == nil {
			return k, true
		}
		s.slots[k] = p
		s.msgs[k].Buf = p.pkt.Buf[:]
		if w++; w == len(s.workers) {
			w = 0
		}
	}
	return s.batch, true
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
	it.src = m.Addr
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

// routeIn collects the decrypt pool's output in dispatch order and runs the
// ordered checks (replay window, cryptokey routing) in place, then copies
// the inner packet to tunwrite's queue, waiting when it is full.
type routeIn struct {
	t       *Tunnel
	workers []*spsc.Queue[inItem]
	out     *spsc.Queue[tunPacket]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	clk     burstClock
}

func (s *routeIn) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.out.Cancel()
	abandonInHand(s.c, s.workers...)
	for {
		q := s.workers[s.rr.next]
		src := q.TryNext()
		waited := src == nil
		if waited {
			s.out.Flush()
			releaseAll(s.workers)
			s.c.publish()
			var ok bool
			if src, ok = q.Next(done); !ok {
				return nil
			}
		}
		// Advance first: if the checks below panic, the restarted stage
		// resumes at the next worker and the order holds.
		s.rr.advance(len(s.workers))
		if src.drop == dropNone {
			s.t.faults.hit(stageRouteIn)
			if !s.accept(done, src, waited) {
				return nil
			}
		}
		q.Done()
	}
}

// accept runs the ordered checks on one opened packet and hands its inner
// packet on; false means done was closed while it waited.
func (s *routeIn) accept(done <-chan struct{}, src *inItem, fresh bool) bool {
	if r := s.t.acceptStep(src, s.clk.get(s.t.clock, fresh)); r != dropNone {
		s.c.drop(r)
		return true
	}
	n := int(src.pkt.InnerLen)
	if n == 0 {
		s.c.keepalives.Add(1)
		return true
	}
	dst, ok := reserve(done, s.out, s.c)
	if !ok {
		return false
	}
	copy(dst.Buf[wire.InnerOffset:wire.InnerOffset+n], src.pkt.Inner())
	dst.InnerLen = src.pkt.InnerLen
	s.out.Commit()
	s.c.pass(n)
	return true
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
	abandonInHand(s.c, s.in)
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
		if err != nil {
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
