package stages

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/supervisor/clock"
	"pipeguard/tunio"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// holdingConn is a tunnel's socket that, when asked, holds back the next
// data datagram it is given to send, so that a test can deliver it much
// later.
type holdingConn struct {
	*memudp.Conn
	mu   sync.Mutex // guards arm and held
	arm  bool
	held []byte
}

func (h *holdingConn) WriteBatch(msgs []tunio.Datagram) error {
	h.mu.Lock()
	if h.arm {
		for i, m := range msgs {
			if typ, _ := wire.PeekType(m.Buf[:m.N]); typ == wire.TypeTransport && m.N > wire.MinTransportSize {
				h.held, h.arm = append([]byte(nil), m.Buf[:m.N]...), false
				msgs = slices.Delete(slices.Clone(msgs), i, i+1)
				break
			}
		}
	}
	h.mu.Unlock()
	return h.Conn.WriteBatch(msgs)
}

// hold arms the conn; take returns what it held, or nil.
func (h *holdingConn) hold() { h.mu.Lock(); h.arm = true; h.mu.Unlock() }
func (h *holdingConn) take() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.held
	h.held = nil
	return b
}

// TestTwoTunnelsFor24Hours runs two tunnels against each other through 24
// hours of protocol time on a fake clock, a packet each way every
// longStep, and checks the protocol's timers end to end:
//   - keys rotate at least every RekeyAfterTime (plus one step) of sending;
//   - delivery never pauses: every packet arrives before the clock moves
//     on (a handshake round trip in memory takes no protocol time, so a
//     packet that waited for a handshake would arrive a step late);
//   - a packet held back and delivered later than RejectAfterTime after
//     its key was made is not accepted (once every hour, just after a
//     rekey, so that its key is still in a slot, only too old);
//   - once the traffic stops, every key is erased ZeroKeysAfter (3 ×
//     RejectAfterTime) after the last handshake, and not before.
//
// It must stay well under 30 s with -race in CI: 8,640 steps and some
// 660 handshakes.
func TestTwoTunnelsFor24Hours(t *testing.T) {
	const (
		day      = 24 * time.Hour
		longStep = 10 * time.Second
	)
	leakCheck(t)
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	net := memudp.NewNetworkConfig(blocking)
	ka, kb := mustKey(t), mustKey(t)
	udpA, udpB := netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("192.0.2.2:51820")
	var tap *holdingConn
	a := startTunnel(t, net, tunnelSpec{key: ka, udp: udpA, inner: hostA.v4, workers: 1, clock: clk, faults: true,
		peers:   []PeerConfig{{PublicKey: kb.Public(), Endpoint: udpB, AllowedIPs: allowedIPs(hostB, false)}},
		wrapUDP: func(c *memudp.Conn) tunio.UDPConn { tap = &holdingConn{Conn: c}; return tap }})
	b := startTunnel(t, net, tunnelSpec{key: kb, udp: udpB, inner: hostB.v4, workers: 1, clock: clk, faults: true,
		peers: []PeerConfig{{PublicKey: ka.Public(), Endpoint: udpA, AllowedIPs: allowedIPs(hostA, false)}}})
	peerOf := func(e *end) *peer { return firstPeer(e.tun) }
	// sleeps signals each tunnel's timer actor going to sleep.
	type sleepSignal struct {
		e      *end
		asleep chan struct{}
	}
	sleeps := []*sleepSignal{{e: a, asleep: make(chan struct{}, 64)}, {e: b, asleep: make(chan struct{}, 64)}}
	for _, s := range sleeps {
		hook := func(p racePoint) {
			if p == raceTimersAsleep {
				select {
				case s.asleep <- struct{}{}:
				default:
				}
			}
		}
		s.e.tun.faults.race.Store(&hook)
	}
	start := clk.Now()
	at := func() time.Duration { return clk.Now().Sub(start) }

	// step moves protocol time on and lets both timer actors run for it.
	// A handshake under way finishes first: in memory a round trip takes
	// no protocol time, and letting the clock run past it would only
	// fire its retry.
	step := func(d time.Duration) {
		for _, e := range []*end{a, b} {
			waitFor(t, 5*time.Second, func() bool { return !peerOf(e).session.Handshaking() },
				func() string {
					return fmt.Sprintf("%v: a handshake did not complete (last completed at %v)\nA:\n%sB:\n%s",
						at(), peerOf(e).session.LastHandshake().Sub(start), fmtStats(a.tun.Stats()), fmtStats(b.tun.Stats()))
				})
		}
		clk.Advance(d)
		// Let each timer actor do what is due at the new time before any
		// traffic: wake it twice and wait for it to go back to sleep each
		// time. The second tick begins after the first has ended, so after
		// the clock moved, even if the first had begun before.
		for _, s := range sleeps {
			for drained := false; !drained; {
				select {
				case <-s.asleep:
				default:
					drained = true
				}
			}
			for range 2 {
				s.e.tun.wake()
				select {
				case <-s.asleep:
				case <-time.After(5 * time.Second):
					t.Fatalf("%v: a timer actor did not go back to sleep", at())
				}
			}
		}
	}
	// exchange sends packet seq A→B and waits for it, then one B→A and
	// waits for it. (Both at once would make the tunnels' first
	// handshakes cross, which real peers sort out by a retry after
	// Rekey-Timeout: a five-second pause that is no part of what this
	// test checks.)
	var pa, pb [100]byte
	exchange := func(seq uint32) {
		fillIPv4(pa[:], hostA.v4, hostB.v4, seq)
		fillIPv4(pb[:], hostB.v4, hostA.v4, seq)
		a.inject(t, pa[:])
		if got := b.recv(t, 5*time.Second); seqOf(got) != seq {
			t.Fatalf("%v: B got packet %d, want %d: a packet was lost or late", at(), seqOf(got), seq)
		}
		b.inject(t, pb[:])
		if got := a.recv(t, 5*time.Second); seqOf(got) != seq {
			t.Fatalf("%v: A got packet %d, want %d: a packet was lost or late", at(), seqOf(got), seq)
		}
	}

	// newest is when the newest session of e was derived: its newest
	// keypair's Created. (LastHandshake would not do for a responder: it
	// counts from the peer's confirmation, which a held packet delays.)
	newest := func(e *end) time.Time {
		var n time.Time
		cur, prev, next := peerOf(e).session.Keypairs()
		for _, kp := range []*noise.Keypair{cur, prev, next} {
			if kp != nil && kp.Created.After(n) {
				n = kp.Created
			}
		}
		return n
	}
	var (
		lastHS                [2]time.Time // per tunnel, the newest session seen
		rotations             int
		maxRekeyGap           time.Duration
		holdNext              bool
		held                  []byte
		deliverAt             time.Duration
		nextHold              = time.Hour
		heldSent, keyExpiredN uint64
	)
	seq := uint32(0)
	for at() < day {
		for i, e := range []*end{a, b} {
			hs := newest(e)
			if hs.IsZero() || hs.Equal(lastHS[i]) {
				continue
			}
			if !lastHS[i].IsZero() {
				gap := hs.Sub(lastHS[i])
				maxRekeyGap = max(maxRekeyGap, gap)
				if gap > noise.RekeyAfterTime+longStep {
					t.Fatalf("%v: tunnel %d went %v without a new handshake while sending", at(), i, gap)
				}
				if i == 0 {
					rotations++
				}
			}
			lastHS[i] = hs
			if i == 0 && at() >= nextHold && held == nil {
				holdNext, nextHold = true, nextHold+time.Hour // a packet on the fresh key
			}
		}
		if holdNext {
			// An extra packet, so that the traffic the timers see stays
			// the same: held back now, delivered too late.
			tap.hold()
			var extra [100]byte
			fillIPv4(extra[:], hostA.v4, hostB.v4, 1<<31)
			a.inject(t, extra[:])
			waitFor(t, 5*time.Second, func() bool { tap.mu.Lock(); defer tap.mu.Unlock(); return tap.held != nil },
				func() string { return "the data datagram was not held back" })
			held, holdNext = tap.take(), false
			deliverAt = at() + noise.RejectAfterTime + longStep
		}
		exchange(seq)
		if held != nil && at() >= deliverAt {
			if err := tap.Conn.WriteBatch([]tunio.Datagram{{Buf: held, N: len(held), Addr: udpB}}); err != nil {
				t.Fatal(err)
			}
			held, heldSent = nil, heldSent+1
			waitFor(t, 5*time.Second, func() bool { return dropsOf(b.tun.Stats(), DropKeyExpired) == heldSent },
				func() string {
					return "a packet delivered after Reject-After-Time was not dropped as key_expired\n" + fmtStats(b.tun.Stats())
				})
		}
		seq++
		step(longStep)
	}
	t.Logf("%d packets each way, %d rotations, longest between two: %v; %d packets held past Reject-After-Time",
		seq, rotations, maxRekeyGap, heldSent)
	if want := int(day / (noise.RekeyAfterTime + longStep)); rotations < want {
		t.Fatalf("%d rotations in %v, want at least %d", rotations, day, want)
	}
	if heldSent < 20 {
		t.Fatalf("only %d held packets were checked", heldSent)
	}
	for _, e := range []*end{a, b} {
		ss := e.tun.Stats()
		keyExpiredN += dropsOf(ss, DropKeyExpired)
		if other := totalDrops(ss) - dropsOf(ss, DropKeyExpired); other != 0 {
			t.Errorf("%d drops other than the held packets'\n%s", other, fmtStats(ss))
		}
	}
	if keyExpiredN != heldSent {
		t.Errorf("%d key_expired drops, want %d (the held packets)", keyExpiredN, heldSent)
	}

	// The traffic stops. Let the last keepalives go, then the keys must
	// live until ZeroKeysAfter after the last session was derived (its
	// keypairs' Created), and no longer.
	for range 3 {
		step(noise.KeepaliveTimeout)
	}
	last := newest(a)
	if nb := newest(b); nb.After(last) {
		last = nb
	}
	hasKeys := func(e *end) bool {
		cur, prev, next := peerOf(e).session.Keypairs()
		return cur != nil || prev != nil || next != nil
	}
	for clk.Now().Before(last.Add(noise.ZeroKeysAfter - longStep)) {
		step(longStep)
	}
	if !hasKeys(a) || !hasKeys(b) {
		t.Fatalf("keys erased %v after the last session was derived, before ZeroKeysAfter (%v)", clk.Now().Sub(last), noise.ZeroKeysAfter)
	}
	step(2 * longStep)
	for _, e := range []*end{a, b} {
		waitFor(t, 5*time.Second, func() bool { return !hasKeys(e) && e.tun.index.Len() == 0 },
			func() string {
				return "keys or indices left " + clk.Now().Sub(last).String() + " after the last session was derived"
			})
	}
}
