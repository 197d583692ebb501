package stages

import (
	"context"
	"log/slog"

	"pipeguard/tunio"
	"pipeguard/wire"
)

// tunRead reads inner packets from the TUN device in batches (a
// segmentation-offloaded read arrives already split into ≤MTU packets)
// straight into packet arrays, and hands them one by one to route-out,
// blocking when its channel is full: the TUN device's queue then fills and
// the kernel pushes back on the sender.
type tunRead struct {
	t   *Tunnel
	dev tunio.Device
	out chan outItem
	c   *stageCounters
	log *slog.Logger

	items []outItem // bufs[i] aliases items[i].pkt.Buf
	bufs  [][]byte
	sizes []int
}

func newTUNRead(t *Tunnel, dev tunio.Device, out chan outItem, c *stageCounters, log *slog.Logger) *tunRead {
	n := min(max(dev.BatchSize(), 1), maxBatch)
	s := &tunRead{t: t, dev: dev, out: out, c: c, log: log,
		items: make([]outItem, n), bufs: make([][]byte, n), sizes: make([]int, n)}
	for i := range s.bufs {
		// Room for a full inner packet after the header; the tag's room
		// stays out of reach of the device.
		s.bufs[i] = s.items[i].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
	}
	return s
}

func (s *tunRead) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for {
		n, err := s.t.readTUN(s.dev, s.items, s.bufs, s.sizes, s.c)
		s.t.faults.hit(stageTUNRead)
		if err != nil {
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		for i := range n {
			if s.items[i].drop != dropNone {
				continue
			}
			if !send(done, s.out, &s.items[i]) {
				return nil
			}
			s.c.pass(int(s.items[i].pkt.InnerLen))
		}
	}
}

// routeOut picks each packet's peer, keypair and counter in arrival order
// (routeStep), and sends it round-robin to the encrypt workers, blocking
// when the next one is full.
type routeOut struct {
	t       *Tunnel
	in      chan outItem
	workers []chan outItem
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	cur     outItem
	clk     burstClock
}

func (s *routeOut) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for {
		ok, waited := recvNoted(done, s.in, &s.cur)
		if !ok {
			return nil
		}
		s.t.faults.hit(stageRouteOut)
		r, staged := s.t.routeStep(&s.cur, s.clk.get(s.t.clock, waited))
		if r != dropNone {
			s.c.drop(r)
			continue
		}
		if staged {
			continue
		}
		if !send(done, s.workers[s.rr.next], &s.cur) {
			return nil
		}
		s.rr.advance(len(s.workers))
		s.c.pass(int(s.cur.pkt.InnerLen))
	}
}

// encryptWorker is one of the encrypt pool's N workers: it seals packets in
// place and hands them on in the order it got them, blocking when its
// output is full.
type encryptWorker struct {
	t   *Tunnel
	in  chan outItem
	out chan outItem
	c   *stageCounters
	log *slog.Logger

	cur  outItem
	held bool
}

func (w *encryptWorker) Serve(ctx context.Context) error {
	w.log.Debug("stage start")
	defer w.log.Debug("stage stop")
	done := ctx.Done()
	if w.held {
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
		w.t.faults.hit(stageEncrypt)
		sealStep(&w.cur)
		w.c.pass(int(w.cur.pkt.MsgLen))
		if !send(done, w.out, &w.cur) {
			return nil
		}
		w.held = false
	}
}

// udpSend collects sealed datagrams from the encrypt workers in dispatch
// order and sends them in batches: it waits for the next one, then takes
// those already waiting in order, up to a batch.
type udpSend struct {
	t       *Tunnel
	workers []chan outItem
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger

	items []outItem
	msgs  []tunio.Datagram
}

func newUDPSend(t *Tunnel, workers []chan outItem, c *stageCounters, log *slog.Logger) *udpSend {
	n := min(max(t.udp.BatchSize(), 1), maxBatch)
	return &udpSend{t: t, workers: workers, c: c, log: log, items: make([]outItem, n), msgs: make([]tunio.Datagram, n)}
}

func (s *udpSend) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for {
		if !recv(done, s.workers[s.rr.next], &s.items[0]) {
			return nil
		}
		s.rr.advance(len(s.workers))
		n := 1
	drain:
		for n < len(s.items) {
			select {
			case s.items[n] = <-s.workers[s.rr.next]:
				s.rr.advance(len(s.workers))
				n++
			default:
				break drain
			}
		}
		s.t.faults.hit(stageUDPSend)
		k := 0
		for i := range n {
			if s.items[i].drop == dropNone { // a dropped slot was counted by its worker
				s.msgs[k] = datagramOf(&s.items[i])
				k++
			}
		}
		if err := s.t.sendDatagrams(s.msgs[:k], s.c); err != nil {
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
