package stages

import (
	"context"
	"log/slog"

	"pipeguard/tunio"
	"pipeguard/wire"
)

// The sequential baseline: one goroutine per direction calls the same step
// functions as the pipeline, inline, on one reused batch of packets, with
// no channels on the data path. Handshake messages still go to the
// handshake actor, and timers to the timer actor: they are the control
// plane, the same in both engines.

// seqInbound reads a batch of datagrams, and for each: classify, open,
// accept; then writes the batch's inner packets to the TUN device.
type seqInbound struct {
	t   *Tunnel
	c   *stageCounters
	log *slog.Logger

	items []inItem
	msgs  []tunio.Datagram
	bufs  [][]byte

	inHand int // datagrams read and not yet written, counted as lost if the loop fails
}

func (s *seqInbound) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	t := s.t
	if s.items == nil {
		n := min(t.udp.BatchSize(), maxBatch)
		s.items, s.msgs, s.bufs = make([]inItem, n), make([]tunio.Datagram, n), make([][]byte, 0, n)
		for i := range s.msgs {
			s.msgs[i].Buf = s.items[i].pkt.Buf[:]
		}
	}
	countHeldBatch(s.c, &s.inHand)
	for {
		s.inHand = 0
		s.c.publish()
		n, err := t.udp.ReadBatch(s.msgs)
		if err != nil {
			return edgeErr(ctx, err)
		}
		s.inHand = n
		t.faults.hit(stageUDPRecv)
		now := t.clock.Now()
		s.bufs = s.bufs[:0]
		for i := range n {
			m, it := &s.msgs[i], &s.items[i]
			if m.N == 0 || m.N > wire.MaxMessageSize {
				t.badSize(m, s.c)
				continue
			}
			it.pkt.MsgLen, it.src, it.local = uint16(m.N), m.Addr, m.Local
			it.peer, it.kp, it.drop = nil, nil, dropNone
			if !t.classifyInbound(it, t.handshakes, s.c) {
				continue
			}
			if r := t.openStep(it, it); r != dropNone {
				s.c.drop(r)
				continue
			}
			if r := t.acceptStep(it, now); r != dropNone {
				s.c.drop(r)
				continue
			}
			if it.pkt.InnerLen == 0 {
				s.c.keepalives.Add(1)
				continue
			}
			s.bufs = append(s.bufs, it.pkt.Buf[:wire.InnerOffset+int(it.pkt.InnerLen)])
		}
		if len(s.bufs) == 0 {
			continue
		}
		if err := t.writeTUN(t.tun, s.bufs, s.c); err != nil {
			return edgeErr(ctx, err)
		}
	}
}

// seqOutbound reads a batch of inner packets, and for each: route, seal;
// then sends the batch's datagrams.
type seqOutbound struct {
	t   *Tunnel
	c   *stageCounters
	log *slog.Logger

	items []outItem
	bufs  [][]byte
	sizes []int
	msgs  []tunio.Datagram
	peers []*peer // of msgs, for sendDatagrams

	inHand int // packets read and not yet sent, as in seqInbound
}

func (s *seqOutbound) Serve(ctx context.Context) error {
	s.log.Debug("stage start")
	defer s.log.Debug("stage stop")
	t := s.t
	if s.items == nil {
		n := min(max(t.tun.BatchSize(), 1), maxBatch)
		s.items, s.bufs, s.sizes, s.msgs, s.peers = make([]outItem, n), make([][]byte, n), make([]int, n), make([]tunio.Datagram, n), make([]*peer, n)
		for i := range s.bufs {
			s.bufs[i] = s.items[i].pkt.Buf[:wire.InnerOffset+wire.MaxInnerSize]
		}
	}
	countHeldBatch(s.c, &s.inHand)
	for {
		s.inHand = 0
		s.c.publish()
		n, err := t.readTUN(t.tun, s.bufs, s.sizes, s.c)
		if err != nil {
			return edgeErr(ctx, err)
		}
		s.inHand = n
		t.faults.hit(stageTUNRead)
		now := t.clock.Now()
		k := 0
		for i := range n {
			it := &s.items[i]
			if !tunPacketStep(it, s.sizes[i], s.c) {
				continue
			}
			r, staged := t.routeStep(it, now)
			if r != dropNone {
				s.c.drop(r)
				continue
			}
			if staged {
				continue
			}
			sealStep(it, it)
			s.msgs[k], s.peers[k] = datagramOf(it), it.peer
			k++
		}
		if err := t.sendDatagrams(s.msgs[:k], s.peers[:k], s.c); err != nil {
			return edgeErr(ctx, err)
		}
	}
}
