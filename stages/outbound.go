package stages

import (
	"context"
	"log/slog"

	"pipeguard/stages/spsc"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// tunRead reads inner packets from the TUN device in batches (a
// segmentation-offloaded read arrives already split into ≤MTU packets)
// straight into route-out's queue, waiting when it is full: the TUN
// device's queue then fills and the kernel pushes back on the sender.
type tunRead struct {
	t   *Tunnel
	dev tunio.Device
	out *spsc.Queue[outItem]
	c   *stageCounters
	log *slog.Logger

	batch int
	slots []*outItem // bufs[i] aliases slots[i]
	bufs  [][]byte
	sizes []int

	inHand int // packets read and not yet handed on, as in udpRecv
}

func newTUNRead(t *Tunnel, dev tunio.Device, out *spsc.Queue[outItem], c *stageCounters, log *slog.Logger) *tunRead {
	n := min(max(dev.BatchSize(), 1), maxBatch)
	return &tunRead{t: t, dev: dev, out: out, c: c, log: log,
		batch: n, slots: make([]*outItem, n), bufs: make([][]byte, n), sizes: make([]int, n)}
}

func (s *tunRead) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.out.Cancel()
	countHeldBatch(s.c, &s.inHand)
	for {
		// Publish the last batch before waiting in the system call.
		s.out.Flush()
		s.c.publish()
		k, ok := s.reserve(done)
		if !ok {
			return nil
		}
		n, err := s.t.readTUN(s.dev, s.bufs[:k], s.sizes[:k], s.c)
		s.inHand = n
		s.t.faults.hit(stageTUNRead)
		if err != nil {
			s.out.Cancel()
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		for i := range n {
			if tunPacketStep(s.slots[i], s.sizes[i], s.c) {
				s.c.pass(s.sizes[i])
			}
		}
		s.out.CommitFirst(n)
		s.inHand = 0
	}
}

// reserve reserves a whole batch of slots (or the queue's capacity, if
// smaller) and points bufs at them, with room for a full inner packet
// after the header; the tag's room stays out of the device's reach. It
// waits for room if it must: a device with segmentation offload splits one
// read into up to a batch of packets, and fewer buffers would lose the
// rest of a large one. Holding reservations while it waits is safe because
// they never exceed the capacity.
func (s *tunRead) reserve(done <-chan struct{}) (int, bool) {
	need := min(s.batch, s.out.Cap())
	for k := range need {
		p := s.out.TryReserve()
		if p == nil {
			var ok bool
			if p, ok = s.out.Reserve(done); !ok {
				return 0, false
			}
		}
		s.slots[k] = p
		s.bufs[k] = p.pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
	}
	return need, true
}

// routeOut picks each packet's peer, keypair and counter in arrival order
// (routeStep), in place, and copies it round-robin to the encrypt workers'
// queues, waiting when the next one is full.
type routeOut struct {
	t       *Tunnel
	in      *spsc.Queue[outItem]
	workers []*spsc.Queue[outItem]
	rr      roundRobin
	c       *stageCounters
	log     *slog.Logger
	clk     burstClock
}

func (s *routeOut) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	for _, q := range s.workers {
		q.Cancel()
	}
	abandonInHand(s.c, s.in)
	for {
		src := s.in.TryNext()
		waited := src == nil
		if waited {
			flushAll(s.workers)
			s.c.publish()
			var ok bool
			if src, ok = s.in.Next(done); !ok {
				return nil
			}
		}
		if src.drop == dropNone {
			s.t.faults.hit(stageRouteOut)
			if !s.route(done, src, waited) {
				return nil
			}
		}
		s.in.Done()
	}
}

// route routes one packet and hands it to the next encrypt worker; false
// means done was closed while it waited.
func (s *routeOut) route(done <-chan struct{}, src *outItem, fresh bool) bool {
	r, staged := s.t.routeStep(src, s.clk.get(s.t.clock, fresh))
	if r != dropNone {
		s.c.drop(r)
		return true
	}
	if staged {
		return true
	}
	dst, ok := reserveIn(done, s.workers, s.rr.next, s.c)
	if !ok {
		return false
	}
	n := int(src.pkt.InnerLen)
	copy(dst.pkt.Buf[wire.InnerOffset:wire.InnerOffset+n], src.pkt.Inner())
	dst.pkt.InnerLen = src.pkt.InnerLen
	dst.peer, dst.kp, dst.counter, dst.dst, dst.drop = src.peer, src.kp, src.counter, src.dst, dropNone
	s.workers[s.rr.next].Commit()
	s.rr.advance(len(s.workers))
	s.c.pass(n)
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
}

func newUDPSend(t *Tunnel, workers []*spsc.Queue[outItem], c *stageCounters, log *slog.Logger) *udpSend {
	n := min(max(t.udp.BatchSize(), 1), maxBatch)
	return &udpSend{t: t, workers: workers, c: c, log: log, batch: n, msgs: make([]tunio.Datagram, 0, n)}
}

func (s *udpSend) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	abandonInHand(s.c, s.workers...)
	for {
		releaseAll(s.workers)
		p, ok := s.workers[s.rr.next].Next(done)
		if !ok {
			return nil
		}
		s.rr.advance(len(s.workers))
		s.msgs = s.msgs[:0]
		for taken := 1; ; taken++ {
			if p.drop == dropNone { // a dropped slot was counted by its worker
				s.msgs = append(s.msgs, datagramOf(p))
			}
			if taken == s.batch {
				break
			}
			if p = s.workers[s.rr.next].TryNext(); p == nil {
				break
			}
			s.rr.advance(len(s.workers))
		}
		s.t.faults.hit(stageUDPSend)
		err := s.t.sendDatagrams(s.msgs, s.c)
		s.c.publish()
		for _, q := range s.workers {
			q.Done()
		}
		if err != nil {
			if tunio.IsClosed(err) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
