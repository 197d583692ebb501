package stages

import (
	"context"
	"log/slog"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// timerActor drives every peer's protocol timers from one goroutine: it
// sleeps until the earliest deadline in its queue (timerq.go), or until a
// session wakes it, then ticks the sessions that are due and carries out
// what they ask: handshake initiations and retries, keepalives, sending
// or dropping the packets that waited for a session, and erasing keys.
// A wake-up costs O(log N) per peer that is due or that asked, never a
// look at every peer. Its clock is the tunnel's, so tests move protocol
// time by hand.
type timerActor struct {
	t   *Tunnel
	c   *stageCounters
	log *slog.Logger

	queue timerQueue
	woken []*peer // scratch: the wake list as taken
	due   []*peer // scratch: the peers due in one round

	// initiations is the budget of handshake initiations that no waiting
	// packet asks for (see initiate).
	initiations workBudget

	keepalive wire.Packet // reused: a keepalive is an empty packet
	msgs      []tunio.Datagram
	peers     []*peer // of msgs, for sendDatagrams: all one peer
}

func newTimerActor(t *Tunnel, c *stageCounters, log *slog.Logger) *timerActor {
	return &timerActor{t: t, c: c, log: log, msgs: make([]tunio.Datagram, 0, StagedPerPeer), peers: make([]*peer, 0, StagedPerPeer),
		initiations: workBudget{rate: initiationRate, burst: initiationBurst}}
}

// idleRecheck bounds how long the actor sleeps with nothing armed, so that
// a lost wake-up costs at most this much delay, not a stuck peer.
const idleRecheck = 5 * time.Second

func (a *timerActor) Serve(ctx context.Context) error {
	a.log.Debug("stage start")
	defer a.log.Debug("stage stop")
	done := ctx.Done()
	timer := a.t.clock.NewTimer(idleRecheck)
	defer timer.Stop()
	a.rebuild()
	for {
		now := a.t.clock.Now()
		a.tick(now)
		wait := idleRecheck
		if e, ok := a.queue.next(); ok {
			wait = min(max(e.at.Sub(now), 0), idleRecheck)
		}
		timer.Reset(wait)
		a.t.faults.interleave(raceTimersAsleep)
		select {
		case <-timer.C():
		case <-a.t.wakeTimers:
		case <-done:
			return nil
		}
	}
}

// rebuild fills the queue from every peer's session: on start, and after
// a restart, whose predecessor's queue is gone. It is the one place the
// actor looks at every peer.
func (a *timerActor) rebuild() {
	a.queue = timerQueue{}
	a.t.wakes.take(nil)
	for r := range a.t.peers.Load().all() {
		a.queue.set(r.p, r.p.session.NextDeadline())
	}
}

// tick reads the deadlines of the peers that asked, then runs the
// sessions due at now, each once; one that is due again at once (its
// actions raised more) runs in the next round, after the actor looked
// at its wake-ups.
func (a *timerActor) tick(now time.Time) {
	a.woken = a.t.wakes.take(a.woken)
	for _, p := range a.woken {
		a.queue.set(p, p.session.NextDeadline())
	}
	clear(a.woken)
	a.due = a.queue.popDue(now, a.due[:0])
	for _, p := range a.due {
		actions, dropped := p.session.Tick(now)
		a.t.forgetKeypairs(dropped)
		a.act(p, actions, now)
		a.queue.set(p, p.session.NextDeadline())
	}
	clear(a.due)
}

func (a *timerActor) act(p *peer, actions noise.Actions, now time.Time) {
	if actions.Has(noise.ActionZeroKeys) {
		p.hs.Clear(&a.t.index)
		a.log.Debug("keys zeroed", "peer", p.name())
	}
	if actions.Has(noise.ActionDropQueued) {
		if n := p.dropStaged(); n > 0 {
			a.c.drops[DropHandshakeGiveUp].Add(uint64(n))
			a.t.logLimited.warn("handshake did not complete; dropped waiting packets", "peer", p.name(), "packets", n)
		}
	}
	sentData := false
	if actions.Has(noise.ActionSendQueued) {
		sentData = a.flushStaged(p, now)
	}
	if actions.Has(noise.ActionSendInitiation) {
		a.initiate(p, now)
	}
	if actions.Has(noise.ActionSendKeepalive) && !sentData {
		a.sendKeepalive(p, now)
	}
}

// initiate sends p a handshake initiation, unless no packet waits for it
// and the actor's initiation budget is spent: then the initiation is
// left to the session's retry, as if it had been lost.
//
// An initiation costs two Curve25519 operations (the ephemeral key and
// its DH with the peer's key, and the static-static one at a peer's
// first). A tunnel with many peers that keep a persistent keepalive but
// are away (a gateway whose clients are off) would otherwise try each of
// them every few seconds: 50,000 such peers kept a core busy. The budget
// (initiationRate a second, bursts of initiationBurst) is smaller than
// the handshake workers': their work answers peers that are there, this
// one mostly knocks on doors nobody opens. A peer with packets waiting
// bypasses it, so traffic never waits for keepalives.
//
// A peer whose public key is a low-order point gets none: no handshake
// with it can complete. The refusal is counted, costs no budget, and
// does not make the peer "silent" (AddPeer said why it never answers).
func (a *timerActor) initiate(p *peer, now time.Time) {
	if p.hs.LowOrder() {
		a.c.drop(DropLowOrderKey)
		return
	}
	if !p.staging.Load() && !a.initiations.take(now, 1) {
		a.t.hsCounters.initiationsDeferred.Add(1)
	} else if r := a.t.sendInitiation(p, now); r != dropNone {
		a.c.drop(r)
		return
	}
	a.t.noteInitiation(p, now)
}

// flushStaged sends the packets that waited for a session, in order, with
// the queue locked so that the data path queues behind them meanwhile.
func (a *timerActor) flushStaged(p *peer, now time.Time) bool {
	kp, ok := p.session.SendKeypair(now)
	dst, local := p.sendTo()
	if !ok || !dst.IsValid() {
		p.session.RequestHandshake(now)
		return false
	}
	sent := false
	p.takeStaged(func(pkts []wire.Packet) {
		a.msgs, a.peers = a.msgs[:0], a.peers[:0]
		for i := range pkts {
			counter, err := kp.ReserveCounter()
			if err != nil {
				a.c.drop(DropKeyExpired)
				continue
			}
			kp.SealAt(&pkts[i], counter)
			a.msgs = append(a.msgs, tunio.Datagram{Buf: pkts[i].Buf[:], N: int(pkts[i].MsgLen), Addr: dst, Local: local})
			a.peers = append(a.peers, p)
			p.txBytes.Add(uint64(pkts[i].MsgLen))
		}
		if err := a.t.sendDatagrams(a.msgs, a.peers, a.c); err == nil && len(a.msgs) > 0 {
			sent = true
		}
	})
	a.c.publish()
	if sent {
		p.session.TransportSent(now, true)
	}
	return sent
}

// sendKeepalive sends an empty transport message, or asks for a handshake
// if no keypair can send.
func (a *timerActor) sendKeepalive(p *peer, now time.Time) {
	kp, ok := p.session.SendKeypair(now)
	dst, local := p.sendTo()
	if !ok || !dst.IsValid() {
		p.session.RequestHandshake(now)
		return
	}
	a.keepalive.InnerLen = 0
	if _, err := kp.Seal(&a.keepalive); err != nil {
		p.session.RequestHandshake(now)
		return
	}
	if a.t.sendControl(a.keepalive.Message(), dst, local, p) {
		p.txBytes.Add(uint64(a.keepalive.MsgLen))
	}
	a.c.keepalives.Add(1)
	p.session.TransportSent(now, false)
}
