package stages

import (
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/wire"
)

// removeAt makes e's tunnel remove pk when a goroutine first reaches
// point, right there, and reports whether it did.
func removeAt(e *end, pk noise.PublicKey, point racePoint) *atomic.Bool {
	var fired atomic.Bool
	hook := func(at racePoint) {
		if at == point && fired.CompareAndSwap(false, true) {
			e.tun.RemovePeer(pk)
		}
	}
	e.tun.faults.race.Store(&hook)
	return &fired
}

// expectPeerGone fails unless nothing of the removed peer tp is left: no
// index in the table, no keys in its session, no handshake under way.
func expectPeerGone(t *testing.T, e *end, tp *peer) {
	t.Helper()
	if n := e.tun.index.Len(); n != 0 {
		t.Errorf("%d index table entries left after the only peer was removed", n)
	}
	if cur, prev, next := tp.session.Keypairs(); cur != nil || prev != nil || next != nil {
		t.Errorf("keys installed into the removed peer's stopped session: %p %p %p", cur, prev, next)
	}
	if s := tp.hs.State(); s == noise.HandshakeInitiationCreated {
		t.Errorf("handshake state %v after removal", s)
	}
}

// TestRemovePeerDuringHandshake: RemovePeer falls between the steps of a
// handshake, forced there by a hook: after a handshake worker consumed a
// response (its keypair already in the index table), after it found the
// peer of a response or an initiation and before it installed the keys.
// Neither an index-table entry nor a keypair may outlive the peer.
func TestRemovePeerDuringHandshake(t *testing.T) {
	cases := []struct {
		name            string
		point           racePoint
		tunnelInitiates bool
	}{
		{"response consumed", raceResponseDerived, true},
		{"response before install", raceBeforeInstall, true},
		{"initiation before install", raceBeforeInstall, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, p := withRawPeer(t, tunnelSpec{faults: true, workers: 1})
			tp := e.tun.peers.Load().key(p.key.Public())
			fired := removeAt(e, p.key.Public(), tc.point)
			if tc.tunnelInitiates {
				e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1)) // waits for a handshake the tunnel starts
				p.respond()
			} else {
				var ini wire.Initiation
				if err := p.hs.CreateInitiation(time.Now(), &p.index, &ini); err != nil {
					t.Fatal(err)
				}
				var b [wire.InitiationSize]byte
				ini.Marshal(&b)
				p.send(b[:])
			}
			waitFor(t, 5*time.Second, func() bool { return handshakesProcessed(t, e) == 1 },
				func() string { return "the handshake message was not processed\n" + fmtStats(e.tun.Stats()) })
			if !fired.Load() {
				t.Fatal("the handshake never reached the race point")
			}
			expectPeerGone(t, e, tp)
			if !tc.tunnelInitiates {
				p.expectNothing(20 * time.Millisecond) // no response for a removed peer
			}
		})
	}
}

// TestRemovePeerDuringInitiation: RemovePeer falls between the timer
// actor's decision to initiate and the initiation's creation. No index
// for a handshake of the removed peer may be left, and nothing is sent.
func TestRemovePeerDuringInitiation(t *testing.T) {
	clk := fakeClock()
	e, p := withRawPeer(t, tunnelSpec{faults: true, clock: clk})
	tp := e.tun.peers.Load().key(p.key.Public())
	fired := removeAt(e, p.key.Public(), raceBeforeInitiation)
	e.tun.sendInitiation(tp, clk.Now()) // as the timer actor would
	if !fired.Load() {
		t.Fatal("sendInitiation never reached the race point")
	}
	expectPeerGone(t, e, tp)
	p.expectNothing(20 * time.Millisecond)
}
