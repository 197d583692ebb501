package stages

import (
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/wire"
)

// TestNoPrivateKey: a tunnel may start without a private key, as an
// interface that `wg set` configures later. Its peers can be added and
// inspected; a handshake message to it is dropped and counted under
// no_private_key, with no answer; a packet for a peer waits as for a
// peer without a session, no initiation goes out, and after the
// handshake's give-up time the waiting packet is dropped.
func TestNoPrivateKey(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			clk := fakeClock()
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, clock: clk, noKey: true})
			if !e.tun.PrivateKey().IsZero() || !e.tun.PublicKey().IsZero() {
				t.Fatalf("keys of a tunnel without one: private zero %v, public %s", e.tun.PrivateKey().IsZero(), e.tun.PublicKey())
			}
			extra := mustKey(t).Public()
			if err := e.tun.AddPeer(PeerConfig{PublicKey: extra}); err != nil {
				t.Fatalf("AddPeer without a private key: %v", err)
			}
			if err := e.tun.AddPeer(PeerConfig{PublicKey: noise.PublicKey{}}); err == nil {
				t.Error("AddPeer took a low-order public key")
			}
			if n := len(e.tun.Peers()); n != 2 {
				t.Fatalf("%d peers, want 2", n)
			}

			// The peer initiates, to the key the tunnel does not have yet.
			var msg wire.Initiation
			if err := p.hs.CreateInitiation(time.Now(), &p.index, &msg); err != nil {
				t.Fatal(err)
			}
			var b [wire.InitiationSize]byte
			msg.Marshal(&b)
			p.send(b[:])
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropNoPrivateKey) == 1 },
				func() string { return "initiation not counted as no_private_key\n" + fmtStats(e.tun.Stats()) })
			p.expectNothing(20 * time.Millisecond)

			// Outbound: the packet waits, and no initiation is sent, also
			// when the retries fall due.
			e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1))
			waiting := e.tun.peers.Load().byKey[p.key.Public()]
			waitFor(t, 5*time.Second, waiting.staging.Load, func() string { return "packet not waiting\n" + fmtStats(e.tun.Stats()) })
			for range noise.MaxHandshakeAttempts - 1 {
				advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
				p.expectNothing(10 * time.Millisecond)
			}
			if d := dropsOf(e.tun.Stats(), DropHandshakeGiveUp); d != 0 {
				t.Fatalf("waiting packet dropped before the give-up time\n%s", fmtStats(e.tun.Stats()))
			}
			advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropHandshakeGiveUp) == 1 },
				func() string { return "waiting packet not given up\n" + fmtStats(e.tun.Stats()) })
			p.expectNothing(10 * time.Millisecond)
			if ss := e.tun.Stats(); totalDrops(ss) != 2 {
				t.Errorf("want 2 drops (no_private_key, handshake_give_up)\n%s", fmtStats(ss))
			}
		})
	}
}

// TestNoPrivateKeyConfig: New takes a config without a key; the only
// key-related refusal left is a peer key no handshake could use.
func TestNoPrivateKeyConfig(t *testing.T) {
	if _, err := (&Config{}).withDefaults(); err != nil {
		t.Fatalf("config without a private key: %v", err)
	}
}
