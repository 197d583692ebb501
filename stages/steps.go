package stages

import (
	"time"

	"pipeguard/noise"
	"pipeguard/wire"
)

// The per-packet step functions. Both engines call exactly these: the
// pipeline from its stages, the sequential engine inline, so a benchmark
// of one against the other compares scheduling, not code. None of them
// allocates, blocks or logs.

// openStep authenticates and decrypts one transport message from src into
// dst: the same item in the sequential engine, the next stage's slot in
// the pipeline's decrypt pool. It runs in the pool, in any order, so it
// must not touch the replay window or anything else that needs packet
// order. src's header is overwritten.
func (t *Tunnel) openStep(dst, src *inItem) DropReason {
	h, kp, p, r := t.transportKeypair(src)
	if r != dropNone {
		return r
	}
	if err := kp.OpenTo(&dst.pkt, &src.pkt, h.Counter); err != nil {
		return DropAuth
	}
	dst.kp, dst.peer, dst.counter, dst.src, dst.local, dst.drop, dst.ecn = kp, p, h.Counter, src.src, src.local, dropNone, src.ecn
	return dropNone
}

// transportKeypair parses the header of the transport message in it and
// finds the keypair and peer its receiver index names.
func (t *Tunnel) transportKeypair(it *inItem) (wire.TransportHeader, *noise.Keypair, *peer, DropReason) {
	h, err := wire.ParseTransportHeader(it.pkt.Message())
	if err != nil {
		return h, nil, nil, DropMalformed
	}
	kp, p, ok := t.keypairByIndex(h.Receiver)
	if !ok {
		return h, nil, nil, DropUnknownIndex
	}
	return h, kp, p, dropNone
}

// acceptStep runs on an opened packet in arrival order: the replay window,
// the keypair's age, confirmation of a responder's new keypair, roaming,
// the peer's timers, and cryptokey routing of the inner source. On dropNone
// the inner packet is trimmed to its IP length, with the outer header's
// ECN carried into its own (RFC 6040), ready for the TUN device, or empty
// for a keepalive, which has nothing to write.
func (t *Tunnel) acceptStep(it *inItem, now time.Time) DropReason {
	p, kp := it.peer, it.kp
	if !kp.Replay.ValidateCounter(it.counter, noise.RejectAfterMessages) {
		return DropReplay
	}
	if !p.session.ReceiveAllowed(kp, now) {
		return DropKeyExpired
	}
	p.roam(it.src, it.local)
	data := it.pkt.InnerLen > 0
	// A packet on a keypair other than current must be reported at once:
	// it may be the peer's confirmation of a responder's new keypair.
	if kp != p.session.Current() || p.rxReport.due(now, data) {
		t.forgetKeypairs(p.session.TransportReceived(kp, now, data))
	}
	// The transfer counters count what the kernel counts: a keepalive,
	// and a data packet once it passed the checks below (not one that is
	// not IP or comes from a source outside the peer's allowed IPs).
	if !data {
		p.rxBytes.Add(uint64(it.pkt.MsgLen))
		return dropNone // a keepalive
	}
	ip, err := wire.PeekIP(it.pkt.Inner())
	if err != nil {
		return DropNotIP
	}
	if owner, ok := t.routes().Lookup(ip.Src); !ok || owner != p {
		return DropNotAllowed
	}
	p.rxBytes.Add(uint64(it.pkt.MsgLen))
	it.pkt.InnerLen = uint16(ip.Len) // strip the sender's padding
	if it.ecn != wire.NotECT {
		inner := it.pkt.Inner()
		in := wire.PacketECN(inner)
		out, drop := wire.DecapsulateECN(it.ecn, in)
		if drop {
			return DropECN
		}
		if out != in {
			wire.SetPacketECN(inner, out)
		}
	}
	return dropNone
}

// routeStep picks the peer for an inner packet read from the TUN device,
// and the keypair and counter it will be sealed with. A packet for a peer
// without a usable session is queued on the peer (staged) and a handshake
// requested; then routeStep returns staged == true and the caller forgets
// the packet.
func (t *Tunnel) routeStep(it *outItem, now time.Time) (reason DropReason, staged bool) {
	ip, err := wire.PeekIP(it.pkt.Inner())
	if err != nil {
		return DropNotIP, false
	}
	it.pkt.InnerLen = uint16(ip.Len)
	p, ok := t.routes().Lookup(ip.Dst)
	if !ok {
		return DropNoRoute, false
	}
	dst, local := p.sendTo()
	if !dst.IsValid() {
		return DropNoEndpoint, false
	}
	var kp *noise.Keypair
	ready := func() bool {
		kp, ok = p.session.SendKeypair(now)
		return ok
	}
	if p.staging.Load() || !ready() {
		queued, full := p.stageUnlessReady(&it.pkt, ready)
		if queued || full {
			p.session.RequestHandshake(now)
			if full {
				return DropStagedOverflow, false
			}
			return dropNone, true
		}
	}
	counter, err := kp.ReserveCounter()
	if err != nil {
		// Exhausted between the check and now: stage it for the next
		// session rather than drop it.
		if queued, _ := p.stageUnlessReady(&it.pkt, func() bool { return false }); queued {
			p.session.RequestHandshake(now)
			return dropNone, true
		}
		return DropKeyExpired, false
	}
	if p.txReport.due(now, true) {
		p.session.TransportSent(now, true)
	}
	p.txBytes.Add(uint64(wire.PaddedLen(int(it.pkt.InnerLen)) + wire.MinTransportSize))
	it.peer, it.kp, it.counter, it.dst, it.local = p, kp, counter, dst, local
	it.ecn = wire.EncapsulateECN(wire.PacketECN(it.pkt.Inner()))
	return dropNone, false
}

// sealStep encrypts src with the keypair and counter routeStep chose, into
// dst: the same item in the sequential engine, the next stage's slot in
// the pipeline's encrypt pool.
func sealStep(dst, src *outItem) {
	src.kp.SealTo(&dst.pkt, &src.pkt, src.counter)
	dst.peer, dst.dst, dst.local, dst.drop, dst.ecn = src.peer, src.dst, src.local, dropNone, src.ecn
}
