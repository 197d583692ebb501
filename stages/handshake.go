package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// handshakeActor answers the handshake messages udprecv hands it, off the
// data path. Its queue is small and drops when full (udprecv never waits
// for it); from a quarter full it counts as under load and makes peers
// prove their address with a cookie before it does any Curve25519 work,
// and then it also limits each source address's rate.
type handshakeActor struct {
	t   *Tunnel
	in  chan handshakeMsg
	c   *stageCounters
	log *slog.Logger

	limiter sourceLimiter
	cur     handshakeMsg
}

func (a *handshakeActor) Serve(ctx context.Context) error {
	a.log.Debug("stage start")
	defer a.log.Debug("stage stop")
	done := ctx.Done()
	for {
		select {
		case a.cur = <-a.in:
		case <-done:
			return nil
		}
		underLoad := len(a.in) >= cap(a.in)/4
		if r := a.t.handshakeStep(&a.cur, underLoad, &a.limiter); r != dropNone {
			a.c.drop(r)
			continue
		}
		a.c.pass(a.cur.n)
		a.c.publish()
	}
}

// srcBytes is the outer source address as MAC2 binds it: the IP and the
// port, so that a cookie is good only for the address it was sent to.
func srcBytes(src netip.AddrPort, buf *[18]byte) []byte {
	a := src.Addr().As16()
	copy(buf[:16], a[:])
	binary.BigEndian.PutUint16(buf[16:], src.Port())
	return buf[:]
}

// handshakeStep processes one handshake message: the cookie gate, then the
// message itself, then the reply. Both engines run it on the handshake
// actor.
func (t *Tunnel) handshakeStep(m *handshakeMsg, underLoad bool, lim *sourceLimiter) DropReason {
	now := t.clock.Now()
	msg := m.buf[:m.n]
	typ, err := wire.PeekType(msg)
	if err != nil {
		return DropMalformed
	}
	t.keyMu.RLock()
	defer t.keyMu.RUnlock()
	id := t.ident.Load()
	if id == nil {
		return DropNoPrivateKey
	}
	if typ == wire.TypeCookieReply {
		if _, err := noise.ConsumeCookieReply(msg, now, &t.index); err != nil {
			return DropHandshake
		}
		return dropNone
	}
	var sb [18]byte
	var reply wire.CookieReply
	switch err := id.cookies.Admit(msg, srcBytes(m.src, &sb), underLoad, now, &reply); {
	case errors.Is(err, noise.ErrCookieRequired):
		var b [wire.CookieReplySize]byte
		reply.Marshal(&b)
		t.sendControl(b[:], m.src)
		return dropNone
	case err != nil:
		return DropHandshake
	}
	if underLoad && !lim.allow(m.src.Addr(), now) {
		return DropHandshake
	}
	switch typ {
	case wire.TypeInitiation:
		h, err := id.static.ConsumeInitiation(msg, now, t.handshakeByKey)
		if err != nil {
			t.logLimited.debug("initiation rejected", "from", m.src, "err", err)
			return DropHandshake
		}
		p, ok := t.peerByID(h.Peer())
		if !ok {
			return DropHandshake
		}
		p.session.HandshakeReceived(now)
		p.roam(m.src)
		var resp wire.Response
		kp, err := h.CreateResponse(now, &t.index, &resp)
		if err != nil {
			return DropHandshake
		}
		var b [wire.ResponseSize]byte
		resp.Marshal(&b)
		// Counted before Install: once the keypair is installed, staged
		// packets flow and a reader of the counter may already see the
		// traffic this handshake carried.
		p.handshakes.Add(1)
		t.forgetKeypairs(p.session.Install(kp, now))
		t.sendControl(b[:], m.src)
		p.session.ResponseSent(now)
		t.log.Debug("handshake answered", "peer", p.name, "from", m.src)
	case wire.TypeResponse:
		h, kp, err := id.static.ConsumeResponse(msg, now, &t.index)
		if err != nil {
			t.logLimited.debug("response rejected", "from", m.src, "err", err)
			return DropHandshake
		}
		p, ok := t.peerByID(h.Peer())
		if !ok {
			return DropHandshake
		}
		p.session.HandshakeReceived(now)
		p.roam(m.src)
		p.handshakes.Add(1) // before Install, as above
		t.forgetKeypairs(p.session.Install(kp, now))
		t.log.Debug("handshake complete", "peer", p.name, "role", "initiator")
	default:
		return DropMalformed
	}
	return dropNone
}

// sendControl sends one handshake or cookie message. Control messages are
// rare (a few per peer per two minutes), so one system call each is fine.
func (t *Tunnel) sendControl(b []byte, to netip.AddrPort) {
	msgs := [1]tunio.Datagram{{Buf: b, N: len(b), Addr: to}}
	if err := t.udpOut.WriteBatch(msgs[:]); err != nil && !tunio.IsClosed(err) {
		t.logLimited.warn("sending handshake message failed", "to", to, "err", err)
	}
}

// sendInitiation starts (or retries) a handshake with p. It runs on the
// timer actor, which the session told to.
func (t *Tunnel) sendInitiation(p *peer, now time.Time) {
	t.keyMu.RLock()
	defer t.keyMu.RUnlock()
	dst := p.Endpoint()
	if !dst.IsValid() || t.ident.Load() == nil {
		// Nowhere to send it (the peer must reach us first), or no key
		// to make it with yet. The session retries, then gives up and
		// drops what waits, as for a peer that does not answer.
		return
	}
	var msg wire.Initiation
	if err := p.hs.CreateInitiation(now, &t.index, &msg); err != nil {
		t.logLimited.warn("creating initiation failed", "peer", p.name, "err", err)
		return
	}
	var b [wire.InitiationSize]byte
	msg.Marshal(&b)
	t.sendControl(b[:], dst)
	p.session.InitiationSent(now)
	t.log.Debug("handshake initiated", "peer", p.name, "to", dst)
}
