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
// sleeps until the earliest deadline any session reported, or until a
// session wakes it, then ticks the sessions that are due and carries out
// what they ask: handshake initiations and retries, keepalives, sending
// or dropping the packets that waited for a session, and erasing keys.
// Its clock is the tunnel's, so tests move protocol time by hand.
type timerActor struct {
	t   *Tunnel
	c   *stageCounters
	log *slog.Logger

	keepalive wire.Packet // reused: a keepalive is an empty packet
	msgs      []tunio.Datagram
	peers     []*peer // of msgs, for sendDatagrams: all one peer
}

func newTimerActor(t *Tunnel, c *stageCounters, log *slog.Logger) *timerActor {
	return &timerActor{t: t, c: c, log: log, msgs: make([]tunio.Datagram, 0, StagedPerPeer), peers: make([]*peer, 0, StagedPerPeer)}
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
	for {
		now := a.t.clock.Now()
		next := a.tick(now)
		wait := idleRecheck
		if !next.IsZero() {
			wait = min(max(next.Sub(now), 0), idleRecheck)
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

// tick runs the due sessions and returns the earliest deadline left.
func (a *timerActor) tick(now time.Time) time.Time {
	var next time.Time
	for _, p := range a.t.peers.Load().list {
		d := p.session.NextDeadline()
		if !d.IsZero() && !d.After(now) {
			actions, dropped := p.session.Tick(now)
			a.t.forgetKeypairs(dropped)
			a.act(p, actions, now)
			d = p.session.NextDeadline()
		}
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

func (a *timerActor) act(p *peer, actions noise.Actions, now time.Time) {
	if actions.Has(noise.ActionZeroKeys) {
		p.hs.Clear(&a.t.index)
		a.log.Debug("keys zeroed", "peer", p.name)
	}
	if actions.Has(noise.ActionDropQueued) {
		if n := p.dropStaged(); n > 0 {
			a.c.drops[DropHandshakeGiveUp].Add(uint64(n))
			a.t.logLimited.warn("handshake did not complete; dropped waiting packets", "peer", p.name, "packets", n)
		}
	}
	sentData := false
	if actions.Has(noise.ActionSendQueued) {
		sentData = a.flushStaged(p, now)
	}
	if actions.Has(noise.ActionSendInitiation) {
		// A refused initiation (a low-order key) sends nothing, so the
		// peer is not silent: AddPeer said why it will never answer.
		if r := a.t.sendInitiation(p, now); r != dropNone {
			a.c.drop(r)
		} else {
			a.t.noteInitiation(p, now)
		}
	}
	if actions.Has(noise.ActionSendKeepalive) && !sentData {
		a.sendKeepalive(p, now)
	}
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
