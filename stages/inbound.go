package stages

import (
	"context"
	"log/slog"

	"pipeguard/tunio"
	"pipeguard/wire"
)

// udpRecv reads datagrams in batches straight into packet arrays, sends
// transport messages round-robin to the decrypt workers and handshake
// messages to the handshake actor.
//
// Full channels: a full decrypt worker blocks udpRecv (backpressure: the
// socket's buffer then drops, as a network would); a full handshake queue
// drops the message and counts it, so a handshake flood never stalls data.
type udpRecv struct {
	t          *Tunnel
	conn       tunio.UDPConn
	workers    []chan inItem
	handshakes chan handshakeMsg
	rr         roundRobin
	c          *stageCounters
	log        *slog.Logger

	items []inItem // the batch being read; msgs[i].Buf aliases items[i].pkt.Buf
	msgs  []tunio.Datagram
}

func newUDPRecv(t *Tunnel, conn tunio.UDPConn, workers []chan inItem, hs chan handshakeMsg, c *stageCounters, log *slog.Logger) *udpRecv {
	n := min(conn.BatchSize(), maxBatch)
	s := &udpRecv{t: t, conn: conn, workers: workers, handshakes: hs, c: c, log: log,
		items: make([]inItem, n), msgs: make([]tunio.Datagram, n)}
	for i := range s.msgs {
		s.msgs[i].Buf = s.items[i].pkt.Buf[:]
	}
	return s
}

func (s *udpRecv) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for {
		n, err := s.conn.ReadBatch(s.msgs)
		s.t.faults.hit(stageUDPRecv)
		if err != nil {
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		for i := range n {
			m := &s.msgs[i]
			it := &s.items[i]
			if m.N == 0 || m.N > wire.MaxMessageSize {
				s.c.drop(DropMalformed)
				continue
			}
			it.pkt.MsgLen = uint16(m.N)
			it.src = m.Addr
			it.peer, it.kp, it.drop = nil, nil, dropNone
			if !s.t.classifyInbound(it, s.handshakes, s.c) {
				continue
			}
			if !send(done, s.workers[s.rr.next], it) {
				return nil
			}
			s.rr.advance(len(s.workers))
			s.c.pass(m.N)
		}
	}
}

// decryptWorker is one of the decrypt pool's N workers: it opens transport
// messages in place and hands them on in the order it got them. It blocks
// when its output is full.
type decryptWorker struct {
	t   *Tunnel
	in  chan inItem
	out chan inItem
	c   *stageCounters
	log *slog.Logger

	cur  inItem // the packet in hand; kept in the struct so a restart finds it
	held bool   // cur was taken from in and not yet handed on
}

func (w *decryptWorker) Serve(ctx context.Context) error {
	w.log.Debug("stage start")
	defer w.log.Debug("stage stop")
	done := ctx.Done()
	if w.held {
		// We panicked with a packet in hand. Emit its slot, marked, so the
		// collector stays in step with the dispatcher.
		w.cur.drop = DropPanic
		w.c.drop(DropPanic)
		if !send(done, w.out, &w.cur) {
			return nil
		}
		w.held = false
	}
	for {
		if !recv(done, w.in, &w.cur) {
			return nil
		}
		w.held = true
		w.t.faults.hit(stageDecrypt)
		if r := w.t.openStep(&w.cur); r != dropNone {
			w.cur.drop = r
			w.c.drop(r)
		} else {
			w.c.pass(int(w.cur.pkt.InnerLen))
		}
		if !send(done, w.out, &w.cur) {
			return nil
		}
		w.held = false
	}
}

// routeIn collects the decrypt pool's output in dispatch order and runs the
// ordered checks (replay window, cryptokey routing) before the TUN write.
// It blocks when tunwrite's channel is full.
type routeIn struct {
	t       *Tunnel
	workers []chan inItem
	out     chan inItem
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	cur     inItem
	clk     burstClock
}

func (s *routeIn) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for {
		ok, waited := recvNoted(done, s.workers[s.rr.next], &s.cur)
		if !ok {
			return nil
		}
		// Advance first: if the checks below panic, the restarted stage
		// resumes at the next worker and the order holds.
		s.rr.advance(len(s.workers))
		if s.cur.drop != dropNone {
			continue // counted by the worker that dropped it
		}
		s.t.faults.hit(stageRouteIn)
		if r := s.t.acceptStep(&s.cur, s.clk.get(s.t.clock, waited)); r != dropNone {
			s.c.drop(r)
			continue
		}
		if s.cur.pkt.InnerLen == 0 {
			s.c.keepalives.Add(1)
			continue
		}
		if !send(done, s.out, &s.cur) {
			return nil
		}
		s.c.pass(int(s.cur.pkt.InnerLen))
	}
}

// tunWrite writes inner packets to the TUN device in batches: it waits for
// one packet, then takes whatever else is already queued, up to a batch,
// so a busy tunnel makes one system call per batch and an idle one adds
// no delay.
type tunWrite struct {
	t   *Tunnel
	dev tunio.Device
	in  chan inItem
	c   *stageCounters
	log *slog.Logger

	items []inItem
	bufs  [][]byte
}

func newTUNWrite(t *Tunnel, dev tunio.Device, in chan inItem, c *stageCounters, log *slog.Logger) *tunWrite {
	n := min(max(dev.BatchSize(), 1), maxBatch)
	return &tunWrite{t: t, dev: dev, in: in, c: c, log: log, items: make([]inItem, n), bufs: make([][]byte, 0, n)}
}

func (s *tunWrite) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for {
		if !recv(done, s.in, &s.items[0]) {
			return nil
		}
		n := 1
	drain:
		for n < len(s.items) {
			select {
			case s.items[n] = <-s.in:
				n++
			default:
				break drain
			}
		}
		s.t.faults.hit(stageTUNWrite)
		s.bufs = s.bufs[:0]
		for i := range n {
			s.bufs = append(s.bufs, s.items[i].pkt.Buf[:wire.InnerOffset+int(s.items[i].pkt.InnerLen)])
		}
		if err := s.t.writeTUN(s.dev, s.bufs, s.c); err != nil {
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
