package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// handshakeWorker is one of the handshake pool's workers: each answers
// the handshake messages udprecv hands the pool, off the data path, all
// from one queue. The queue is small and drops when full (udprecv never
// waits for it). The pool is under load while its queue is a quarter
// full or its budget for Curve25519 work is spent, and for
// underLoadAfterTime after either: it then makes peers prove their
// address with a cookie before it does any Curve25519 work, limits each
// source address's rate, and yields to the data stages before each
// message; and only the first worker takes messages, the others wait
// until the load is over, so that a flood gets one worker's share of the
// CPU, never the whole pool's.
//
// Out of load, the workers spread handshakes over the cores: a thousand
// peers reconnecting within a second cost about 0.3 s of X25519 work,
// which one worker shares with everything else on its core; when it
// falls behind, its queue passes the threshold and every peer without a
// cookie pays a cookie round (five seconds, a real initiator's retry).
// A peer's state needs no pinning to one worker: noise.Handshake
// serialises its own steps, and keys are installed under the peer's
// hsMu.
type handshakeWorker struct {
	t      *Tunnel
	pool   *handshakePool
	helper bool // not the first worker: waits out the load
	in     chan handshakeMsg
	c      *stageCounters
	log    *slog.Logger

	cur handshakeMsg
}

// handshakePool is what the handshake workers share: the limits, the
// load window, and the helpers waiting for it to end. The tunnel owns
// it, so that a restarted worker finds it as it was.
type handshakePool struct {
	mu        sync.Mutex // guards limits and loadUntil
	limits    handshakeLimits
	loadUntil time.Time // under load before this time (protocol clock)

	// waiting counts helpers that wait on resume; the first worker
	// sends them a token each when it finds the load over.
	waiting atomic.Int32
	resume  chan struct{}
}

// handshakeLimits bound the handshake workers' work under load: per
// source address, and in total.
type handshakeLimits struct {
	perSource sourceLimiter
	work      workBudget
}

func newHandshakePool(b HandshakeBudget, workers int) *handshakePool {
	return &handshakePool{limits: handshakeLimits{work: newWorkBudget(b)}, resume: make(chan struct{}, workers)}
}

// underLoadAfterTime is how long the pool stays under load after its
// queue was last a quarter full: wireguard-go's UnderLoadAfterTime. A
// flood that comes in bursts would otherwise cost a Curve25519 operation
// per message whenever the queue dipped between two bursts.
const underLoadAfterTime = time.Second

// underLoad reports whether the pool is under load at now, with depth of
// capacity messages in its queue, and notes it when the queue is at the
// threshold or the work budget cannot pay for an initiation.
func (p *handshakePool) underLoad(now time.Time, depth, capacity int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if depth >= capacity/4 || p.limits.work.empty(now, noise.DHPerInitiation) {
		p.loadUntil = now.Add(underLoadAfterTime)
		return true
	}
	return now.Before(p.loadUntil)
}

// loaded reports whether the load window is open at now.
func (p *handshakePool) loaded(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return now.Before(p.loadUntil)
}

// allowSource takes a token from src's bucket of the per-source limit.
func (p *handshakePool) allowSource(src netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits.perSource.allow(src, now)
}

// takeWork takes cost X25519 operations from the work budget.
func (p *handshakePool) takeWork(now time.Time, cost float64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits.work.take(now, cost)
}

// wakeHelpers gives every waiting helper its token back to work.
func (p *handshakePool) wakeHelpers() {
	for p.waiting.Load() > 0 {
		select {
		case p.resume <- struct{}{}:
			p.waiting.Add(-1)
		default:
			return // every waiting helper holds a token it has not taken yet
		}
	}
}

// waitOutLoad keeps a helper out of the queue while the pool is under
// load. It reports false when done closed. A helper that starts waiting
// just as the load ends is woken by the first worker's next message out
// of load.
func (w *handshakeWorker) waitOutLoad(done <-chan struct{}) bool {
	for w.pool.loaded(w.t.clock.Now()) {
		w.pool.waiting.Add(1)
		select {
		case <-w.pool.resume:
		case <-done:
			return false
		}
	}
	return true
}

func (w *handshakeWorker) Serve(ctx context.Context) error {
	w.log.Debug("stage start")
	defer w.log.Debug("stage stop")
	done := ctx.Done()
	for {
		if w.helper && !w.waitOutLoad(done) {
			return nil
		}
		select {
		case w.cur = <-w.in:
		case <-done:
			return nil
		}
		now := w.t.clock.Now()
		underLoad := w.pool.underLoad(now, len(w.in), cap(w.in))
		if underLoad {
			// Data first: under load, let the stages waiting for a core
			// run before each message. The pool then takes what the data
			// path leaves idle, and a flood it cannot keep up with piles
			// up in its queue, where udprecv drops it for next to nothing.
			// (Measured with cmd/bench --mode flood: on two busy cores it
			// took the data's loss from about 15% to a few.)
			runtime.Gosched()
		} else if !w.helper {
			w.pool.wakeHelpers()
		}
		if r := w.t.handshakeStep(&w.cur, now, underLoad, w.pool); r != dropNone {
			w.c.drop(r)
			continue
		}
		w.c.pass(w.cur.n)
		w.c.publish()
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
// workers.
func (t *Tunnel) handshakeStep(m *handshakeMsg, now time.Time, underLoad bool, pool *handshakePool) DropReason {
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
	c := &t.hsCounters
	if typ == wire.TypeInitiation {
		c.initiations.Add(1)
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
		t.sendControl(b[:], m.src, m.local, nil)
		c.cookieReplies.Add(1)
		return dropNone
	case err != nil:
		return DropHandshake
	}
	if underLoad && !pool.allowSource(m.src.Addr(), now) {
		c.rateLimited.Add(1)
		return DropHandshake
	}
	cost := float64(noise.DHPerResponse)
	if typ == wire.TypeInitiation {
		cost = noise.DHPerInitiation
	}
	if !pool.takeWork(now, cost) {
		c.throttled.Add(1)
		return DropHandshake
	}
	switch typ {
	case wire.TypeInitiation:
		c.worked.Add(1)
		h, err := id.static.ConsumeInitiation(msg, now, t.handshakeByKey)
		if errors.Is(err, noise.ErrLowOrderPoint) {
			t.logLimited.debug("initiation refused: it claims a peer's low-order key", "from", m.src)
			return DropLowOrderKey
		}
		if err != nil {
			t.logLimited.debug("initiation rejected", "from", m.src, "err", err)
			return DropHandshake
		}
		p, ok := t.peerByID(h.Peer())
		if !ok {
			return DropHandshake
		}
		// Counted once authenticated, as the kernel counts it, whether
		// or not the response then goes out.
		p.rxHandshake.Add(uint64(len(msg)))
		var resp wire.Response
		kp, err := h.CreateResponse(now, &t.index, &resp)
		if err != nil {
			return DropHandshake
		}
		t.faults.interleave(raceBeforeInstall)
		if !t.installKeys(p, kp, m.src, m.local, now) {
			return DropHandshake // removed meanwhile: no response
		}
		var b [wire.ResponseSize]byte
		resp.Marshal(&b)
		if t.sendControl(b[:], m.src, m.local, p) {
			p.txHandshake.Add(uint64(len(b)))
		}
		c.responses.Add(1)
		p.session.ResponseSent(now)
		t.log.Debug("handshake answered", "peer", p.name(), "from", m.src)
	case wire.TypeResponse:
		h, kp, err := id.static.ConsumeResponse(msg, now, &t.index)
		if err != nil {
			t.logLimited.debug("response rejected", "from", m.src, "err", err)
			return DropHandshake
		}
		// kp's index is in the table from here on: install kp or free it.
		t.faults.interleave(raceResponseDerived)
		p, ok := t.peerByID(h.Peer())
		if !ok {
			t.index.Delete(kp.LocalIndex)
			return DropHandshake
		}
		p.rxHandshake.Add(uint64(len(msg)))
		t.faults.interleave(raceBeforeInstall)
		if !t.installKeys(p, kp, m.src, m.local, now) {
			return DropHandshake
		}
		t.log.Debug("handshake complete", "peer", p.name(), "role", "initiator")
	default:
		return DropMalformed
	}
	return dropNone
}

// installKeys reports a handshake message from src, sent to the host's
// address local, that made kp and puts kp into p's session, unless p was
// removed meanwhile: then it frees kp's index instead, which nothing else
// would. RemovePeer erases keys under the same lock (stopPeer), so kp is
// either installed before that erases every key, or never.
func (t *Tunnel) installKeys(p *peer, kp *noise.Keypair, src netip.AddrPort, local tunio.Local, now time.Time) bool {
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	if p.removed {
		t.index.Delete(kp.LocalIndex)
		return false
	}
	p.session.HandshakeReceived(now)
	p.roam(src, local)
	// Counted before Install: once the keypair is installed, staged
	// packets flow and a reader of the counter may already see the
	// traffic this handshake carried.
	p.handshakes.Add(1)
	t.forgetKeypairs(p.session.Install(kp, now))
	t.noteAnswer(p, now)
	return true
}

// stopPeer erases the keys and any handshake under way of a peer being
// removed, and frees their indices; from then on installKeys and
// sendInitiation leave it alone.
func (t *Tunnel) stopPeer(p *peer) {
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	p.removed = true
	t.forgetKeypairs(p.session.Stop())
	p.hs.Clear(&t.index)
}

// sendControl sends one handshake or cookie message, or a keepalive, to
// to from the host's address local (zero: routing picks), for peer p (nil
// for a cookie reply, which answers an address, not a peer), and reports
// whether it went out (the transfer counters count only what did, as the
// kernel's do). Control messages are rare (a few per peer per two
// minutes), so one system call each is fine.
func (t *Tunnel) sendControl(b []byte, to netip.AddrPort, local tunio.Local, p *peer) bool {
	msgs := [1]tunio.Datagram{{Buf: b, N: len(b), Addr: to, Local: local}}
	err := t.udpOut.WriteBatch(msgs[:])
	if msgs[0].LocalGone && p != nil {
		t.localGone(p, local)
	}
	if err != nil && !tunio.IsClosed(err) {
		t.logLimited.warn("sending handshake message failed", "to", to, "err", err)
	}
	return err == nil
}

// sendInitiation starts (or retries) a handshake with p. It runs on the
// timer actor, which the session told to. It returns DropLowOrderKey when
// p's public key is a low-order point, with which no handshake can
// complete: nothing is sent, and the session retries and gives up as
// for a peer that does not answer.
func (t *Tunnel) sendInitiation(p *peer, now time.Time) DropReason {
	t.keyMu.RLock()
	defer t.keyMu.RUnlock()
	dst, local := p.sendTo()
	if !dst.IsValid() || t.ident.Load() == nil {
		// Nowhere to send it (the peer must reach us first), or no key
		// to make it with yet. The session retries, then gives up and
		// drops what waits, as for a peer that does not answer.
		return dropNone
	}
	t.faults.interleave(raceBeforeInitiation)
	var msg wire.Initiation
	// Under hsMu, so that a peer being removed gets no new handshake
	// index after stopPeer cleared its handshake.
	var err error
	p.hsMu.Lock()
	removed := p.removed
	if !removed {
		err = p.hs.CreateInitiation(now, &t.index, &msg)
	}
	p.hsMu.Unlock()
	if removed {
		return dropNone
	}
	if errors.Is(err, noise.ErrLowOrderPoint) {
		return DropLowOrderKey // AddPeer logged it
	}
	if err != nil {
		t.logLimited.warn("creating initiation failed", "peer", p.name(), "err", err)
		return dropNone
	}
	var b [wire.InitiationSize]byte
	msg.Marshal(&b)
	// Before the send, not after: the response can complete the handshake
	// before sendControl returns, and InitiationSent after that would arm
	// the retry of a handshake already done.
	p.session.InitiationSent(now)
	if t.sendControl(b[:], dst, local, p) {
		p.txHandshake.Add(uint64(len(b)))
	}
	t.log.Debug("handshake initiated", "peer", p.name(), "to", dst, "from", local)
	return dropNone
}
