package stages

import (
	"hash/maphash"
	"time"

	"pipeguard/noise"
	"pipeguard/stages/codel"
	"pipeguard/stages/fq"
	"pipeguard/wire"
)

// The managed queues: one per direction, the only place where packets may
// wait in numbers (package fq). The edge stage that reads from the kernel
// (tunread, udprecv; the sequential engine's loops) puts every packet
// there as soon as it has read it, timestamped; whoever takes packets out
// (route-out, dispatch-in; the loops again) gets them flow by flow, new
// flows first, past a CoDel controller that drops or marks before any
// work is spent on them: before a counter is reserved and the packet
// sealed, before a packet is opened. Drops are where they cost least,
// and the queues of the kernel, which no one manages, stay short
// because the readers keep draining them.

// managedQueues is a tunnel's pair of managed queues and what classifies
// packets into them.
type managedQueues struct {
	out  *fq.Queue[outItem]
	in   *fq.Queue[inItem]
	fair bool         // the queues sort packets by flow; without queue management they are FIFOs
	seed maphash.Seed // keys the flow hashes: no one outside can aim at one queue
	// epoch is when the queues' clock started; now is the time since.
	epoch time.Time
}

func newManagedQueues(c *Config) managedQueues {
	cfg := fq.Config{
		Slots:   ManagedQueueSlots,
		Flows:   managedFlows,
		Quantum: wire.MaxInnerSize,
		Manage:  true,
		Params: codel.Params{
			Target:   c.QueueTarget,
			Interval: c.QueueInterval,
			MTU:      wire.MaxMessageSize,
			ECN:      true,
		},
	}
	if c.NoQueueManagement {
		cfg = fq.Config{Slots: c.QueueCapacity, Flows: 1, Quantum: wire.MaxInnerSize}
	}
	in := cfg
	in.Quantum = wire.MaxMessageSize
	if !c.NoQueueManagement {
		// Inbound the flows are a peer's inner flows (innerFlow), whose
		// packets share the peer's counters: fair queuing reorders them,
		// and the receiver takes a counter only so far behind the newest
		// (the replay window). New flows go first, so without a bound a
		// stream of them (each message its own flow, as a DNS server's)
		// could hold an old flow's packet back until it fell out of the
		// window. Half the window leaves room for what the network and
		// the decrypt pool reorder.
		in.MaxOvertake = noise.ReplayWindowSize / 2
	}
	return managedQueues{
		out:   fq.New[outItem](cfg),
		in:    fq.New[inItem](in),
		fair:  !c.NoQueueManagement,
		seed:  maphash.MakeSeed(),
		epoch: time.Now(),
	}
}

// now is the managed queues' clock: the time since epoch on the
// monotonic clock. It is real time even when the tunnel's protocol clock
// is fake: a packet's wait is about the machine, not the protocol.
func (m *managedQueues) now() time.Duration { return time.Since(m.epoch) }

// nowWall is now, and the wall clock's time at the same moment in Unix
// nanoseconds, for datagrams the kernel stamped on arrival.
func (m *managedQueues) nowWall() (time.Duration, int64) {
	t := time.Now()
	return t.Sub(m.epoch), t.UnixNano()
}

// maxKernelWait bounds the wait in the socket's buffer that a kernel stamp
// may add to a datagram's time in the queue: a wall clock stepped between
// the stamp and the read must not pass for a wait.
const maxKernelWait = time.Second

// kernelWait is how long a datagram the kernel stamped at stamp (Unix
// nanoseconds; 0: unstamped) had waited when it was read at wall.
func kernelWait(wall, stamp int64) time.Duration {
	if stamp == 0 {
		return 0
	}
	return min(max(time.Duration(wall-stamp), 0), maxKernelWait)
}

// classifyOut says which flow the i-th packet reserved in the outbound
// queue belongs to, from its inner header, or skips it if it was dropped
// on reading.
func (m *managedQueues) classifyOut(i int, it *outItem) {
	if it.drop != dropNone {
		m.out.Skip(i)
		return
	}
	inner := it.pkt.Inner()
	if !m.fair {
		m.out.Classify(i, 0, len(inner), codel.NotECT)
		return
	}
	class := codel.NotECT
	if wire.PacketECN(inner).Capable() {
		class = codel.ECT
	}
	m.out.Classify(i, wire.FlowHash(m.seed, inner), len(inner), class)
}

// sparedInbound is the largest transport message (an inner packet of
// 256 bytes, padded, with its header and tag) the inbound controller
// spares (codel.Spared). It came before the inbound queue could tell a
// peer's flows apart (innerFlow), when a drop due on a bulk transfer
// fell on whatever was at the head: as likely a DNS query, a game's
// update, a call's frame or a TCP acknowledgement. It still keeps drops
// off the messages whose inner flow cannot be read (an unknown index)
// and off flows of small messages, where a drop shortens the queue by
// less than a quarter of a full one; the drop moves on to the next
// message, so the controller keeps its rate and the bulk flows take the
// drops.
const sparedInbound = wire.TransportHeaderSize + 256 + wire.TagSize

// inboundClass is how the inbound controller may act on a transport
// message of n bytes whose outer ECN field is e.
func inboundClass(n uint16, e wire.ECN) codel.Class {
	switch {
	case e.Capable():
		return codel.ECT // marked, and the mark carried to the inner header
	case n <= sparedInbound:
		return codel.Spared
	}
	return codel.NotECT
}

// classifyIn says which flow the i-th datagram reserved in the inbound
// queue belongs to: its inner flow (innerFlow), so that a ping or a DNS
// query from a peer does not wait behind the same peer's bulk transfer;
// how the controller may act on it (mark it if the outer header is
// ECN-capable, spare it if it is small); and how long it waited in the
// socket's buffer before it was read. It skips a slot that carries no
// transport message (a handshake message handed on, or a datagram
// dropped).
func (t *Tunnel) classifyIn(i int, it *inItem, waited time.Duration) {
	m := &t.aqm
	if it.drop != dropNone {
		m.in.Skip(i)
		return
	}
	m.in.Waited(i, waited)
	if !m.fair {
		m.in.Classify(i, 0, int(it.pkt.MsgLen), codel.NotECT)
		return
	}
	m.in.Classify(i, t.innerFlow(it), int(it.pkt.MsgLen), inboundClass(it.pkt.MsgLen, it.ecn))
}

// innerFlow is the flow key of a transport message: its outer source (the
// peer's endpoint), and the inner 5-tuple that PeekInner decrypts from its
// first ChaCha20 block without authenticating it. One block costs about a
// sixth of opening a full-size message, and it is what lets the inbound
// queue be flow-fair and still drop before the work. A message whose
// receiver index names no keypair keeps the endpoint alone: it fails to
// open anyway. A forged message under a real index hashes its noise into
// some flow, as a spoofed source port would; it cannot aim at one, the
// hash is keyed.
func (t *Tunnel) innerFlow(it *inItem) uint64 {
	var key [18]byte
	a := it.src.Addr().As16()
	copy(key[:], a[:])
	key[16], key[17] = byte(it.src.Port()>>8), byte(it.src.Port())
	flow := maphash.Bytes(t.aqm.seed, key[:])
	h, kp, _, r := t.transportKeypair(it)
	if r != dropNone {
		return flow
	}
	var inner [noise.PeekSize]byte
	n := kp.PeekInner(&inner, &it.pkt, h.Counter)
	return flow ^ wire.FlowHash(t.aqm.seed, inner[:n])
}

// markOut sets CE on an outbound packet the controller chose to mark
// (it was classified ECN-capable, so its inner header takes it).
func markOut(it *outItem) { wire.MarkCE(it.pkt.Inner()) }

// markIn marks an inbound packet the controller chose to mark: its outer
// ECN becomes CE, which acceptStep carries into the inner header once the
// packet is opened (the outer was ECN-capable, so the inner is: the
// sender's encapsulation copies it).
func markIn(it *inItem) { it.ecn = wire.CE }

// QueueStats is a snapshot of one managed queue's counters.
type QueueStats struct {
	Name string // "outbound" or "inbound"
	// Managed is false when queue management is off (Config.NoQueueManagement):
	// the queue is then a FIFO, and drops and marks stay 0.
	Managed bool
	fq.Stats
}

// QueueStats returns a snapshot of each managed queue's counters. It
// takes no lock that the data path takes.
func (t *Tunnel) QueueStats() []QueueStats {
	managed := !t.cfg.NoQueueManagement
	return []QueueStats{
		{Name: "outbound", Managed: managed, Stats: t.aqm.out.Stats()},
		{Name: "inbound", Managed: managed, Stats: t.aqm.in.Stats()},
	}
}
