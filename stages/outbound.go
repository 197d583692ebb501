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

	// The inline path (inline.go): the counters of the steps it does for
	// route-out, the encrypt pool and udpsend, and its batch of datagrams.
	route, enc, send *stageCounters
	msgs             []tunio.Datagram
	peers            []*peer // of msgs, for sendDatagrams
	held             int     // slots reserved and not handed on, as in udpRecv

	inHand int // packets read and not yet handed on, as in udpRecv
}

func newTUNRead(t *Tunnel, dev tunio.Device, out *spsc.Queue[outItem], c, route, enc, send *stageCounters, log *slog.Logger) *tunRead {
	n := min(max(dev.BatchSize(), 1), maxBatch)
	return &tunRead{t: t, dev: dev, out: out, c: c, log: log,
		batch: n, slots: make([]*outItem, n), bufs: make([][]byte, n), sizes: make([]int, n),
		route: route, enc: enc, send: send, msgs: make([]tunio.Datagram, 0, n), peers: make([]*peer, 0, n)}
}

func (s *tunRead) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	done := ctx.Done()
	s.out.Cancel() // reservations of a stage that failed mid-batch
	s.held = 0
	countHeldBatch(s.c, &s.inHand)
	for {
		// Publish the last batch before waiting in the system call.
		s.out.Flush()
		s.c.publish()
		s.route.publish()
		s.enc.publish()
		s.send.publish()
		if s.held == 0 {
			k, ok := s.reserve(done)
			if !ok {
				return nil
			}
			s.held = k
		}
		n, err := s.t.readTUN(s.dev, s.bufs[:s.held], s.sizes[:s.held], s.c)
		s.inHand = n
		s.t.faults.hit(stageTUNRead)
		if err != nil {
			s.out.Cancel()
			s.held = 0
			return edgeErr(ctx, err)
		}
		for i := range n {
			if tunPacketStep(s.slots[i], s.sizes[i], s.c) {
				s.c.pass(s.sizes[i])
			}
		}
		if n <= s.t.inline.limit() && s.t.inline.out.empty() {
			err := s.inline(n)
			s.inHand = 0
			if err != nil {
				return edgeErr(ctx, err)
			}
			continue
		}
		s.out.CommitFirst(n)
		s.t.inline.out.add(n)
		s.inHand = 0
		s.held = 0
	}
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
		r, staged := s.t.routeStep(it, now)
		if r != dropNone {
			s.route.drop(r)
			continue
		}
		if staged {
			continue
		}
		s.route.pass(int(it.pkt.InnerLen))
		sealStep(it, it)
		s.enc.pass(int(it.pkt.MsgLen))
		s.msgs = append(s.msgs, datagramOf(it))
		s.peers = append(s.peers, it.peer)
	}
	return s.t.sendDatagrams(s.msgs, s.peers, s.send)
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
	if got := s.out.TryReserveN(need); got < need {
		s.c.publish()
		if !s.out.ReserveN(done, need-got) {
			return 0, false
		}
	}
	for k := range need {
		s.slots[k] = s.out.Reserved(k)
		s.bufs[k] = s.slots[k].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
	}
	return need, true
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
