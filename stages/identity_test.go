package stages

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio/memudp"
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
			if n := len(e.tun.Peers()); n != 2 {
				t.Fatalf("%d peers, want 2", n)
			}

			// The peer initiates, to the key the tunnel does not have yet.
			p.sendInitiation()
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropNoPrivateKey) == 1 },
				func() string { return "initiation not counted as no_private_key\n" + fmtStats(e.tun.Stats()) })
			p.expectNothing(20 * time.Millisecond)

			// Outbound: the packet waits, and no initiation is sent, also
			// when the retries fall due.
			e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1))
			waiting := e.tun.peers.Load().key(p.key.Public())
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

// TestNoPrivateKeyConfig: New takes a config without a key.
func TestNoPrivateKeyConfig(t *testing.T) {
	if _, err := (&Config{}).withDefaults(); err != nil {
		t.Fatalf("config without a private key: %v", err)
	}
}

// exchangeData checks one packet each way between the tunnel and its raw
// peer, which must have a session.
func exchangeData(t *testing.T, e *end, p *rawPeer, seq uint32) {
	t.Helper()
	in := ipv4(hostB.v4, hostA.v4, 100, seq)
	p.send(p.seal(in))
	if got := e.recv(t, 5*time.Second); !bytes.Equal(got, in) {
		t.Fatalf("peer → tunnel: got seq %d", seqOf(got))
	}
	out := ipv4(hostA.v4, hostB.v4, 120, seq)
	e.inject(t, out)
	if got, _ := p.recvData(5 * time.Second); !bytes.Equal(got, out) {
		t.Fatalf("tunnel → peer: got seq %d", seqOf(got))
	}
}

// TestPrivateKeyChange: a new private key drops every session and
// handshake of the old one (the index table empties, the old session's
// data is dropped as unknown, the old key's initiations go unanswered),
// removes a peer that has the new public key, and a handshake with the
// new key works both ways: the peer initiating, and the tunnel
// initiating for packets that wait. Setting the same key again costs
// nothing.
func TestPrivateKeyChange(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			clk := fakeClock()
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, clock: clk})
			p.initiate()
			exchangeData(t, e, p, 1)

			next := mustKey(t)
			if err := e.tun.AddPeer(PeerConfig{PublicKey: next.Public()}); err != nil {
				t.Fatal(err)
			}
			if err := e.tun.SetPrivateKey(next); err != nil {
				t.Fatal(err)
			}
			if e.tun.PublicKey() != next.Public() || !e.tun.PrivateKey().Equal(next) {
				t.Fatal("keys did not change")
			}
			if peers := e.tun.Peers(); len(peers) != 1 || peers[0].PublicKey != p.key.Public() {
				t.Fatalf("peers after the change: %v, want the raw peer alone", peers)
			}
			if n := e.tun.index.Len(); n != 0 {
				t.Fatalf("%d indices left from the old key", n)
			}
			p.send(p.seal(ipv4(hostB.v4, hostA.v4, 100, 2)))
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropUnknownIndex) == 1 },
				func() string { return "old session's data not dropped as unknown\n" + fmtStats(e.tun.Stats()) })
			e.expectNoPacket(t, 10*time.Millisecond)
			p.sendInitiation() // to the old key: fails MAC1
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropHandshake) == 1 },
				func() string { return "initiation to the old key not dropped\n" + fmtStats(e.tun.Stats()) })
			p.expectNothing(10 * time.Millisecond)

			// The peer is told; it initiates (past the flood limit on
			// initiations, which a key change does not reset).
			advance(e, clk, time.Second)
			e.key = next
			p.attach(e)
			p.initiate()
			exchangeData(t, e, p, 3)
			if err := e.tun.SetPrivateKey(next); err != nil {
				t.Fatal(err)
			}
			exchangeData(t, e, p, 4) // same key: the session lives on

			// Another key; this time the tunnel has data to send first.
			third := mustKey(t)
			if err := e.tun.SetPrivateKey(third); err != nil {
				t.Fatal(err)
			}
			e.key = third
			p.attach(e)
			out := ipv4(hostA.v4, hostB.v4, 120, 5)
			e.inject(t, out)
			p.respond()
			if got, _ := p.recvData(5 * time.Second); !bytes.Equal(got, out) {
				t.Fatalf("waiting packet: got seq %d", seqOf(got))
			}
		})
	}
}

// unclamped returns k with the bits clamping fixes set the other way:
// the same private key to X25519, another one to a byte comparison.
func unclamped(k noise.PrivateKey) noise.PrivateKey {
	k[0] |= 7
	k[31] = (k[31] | 0x80) &^ 0x40
	return k
}

// TestPrivateKeyClamped: the tunnel clamps a private key when it is set,
// from the config and through SetPrivateKey, and PrivateKey (what `wg
// show private-key` prints) returns the clamped key, as the kernel and
// wireguard-go do. Setting the unclamped form of the key the tunnel has
// changes nothing: the session lives on.
func TestPrivateKeyClamped(t *testing.T) {
	key := mustKey(t)
	e, p := withRawPeer(t, tunnelSpec{engine: EnginePipeline, workers: 2, key: unclamped(key)})
	if got := e.tun.PrivateKey(); !got.Equal(key) {
		t.Fatalf("PrivateKey after New with an unclamped key = %x, want %x", got, key)
	}
	p.initiate()
	exchangeData(t, e, p, 1)
	if err := e.tun.SetPrivateKey(unclamped(key)); err != nil {
		t.Fatal(err)
	}
	exchangeData(t, e, p, 2) // the same key: the session lives on
	next := mustKey(t)
	if err := e.tun.SetPrivateKey(unclamped(next)); err != nil {
		t.Fatal(err)
	}
	if got := e.tun.PrivateKey(); !got.Equal(next) || e.tun.PublicKey() != next.Public() {
		t.Fatalf("PrivateKey after SetPrivateKey with an unclamped key = %x, want %x", got, next)
	}
}

// TestPrivateKeySetAndRemove: a tunnel started without a key works once
// it gets one, and removing the key again ends its sessions and makes it
// drop handshake messages as before.
func TestPrivateKeySetAndRemove(t *testing.T) {
	e, p := withRawPeer(t, tunnelSpec{engine: EnginePipeline, workers: 2, noKey: true})
	if err := e.tun.SetPrivateKey(e.key); err != nil {
		t.Fatal(err)
	}
	p.initiate()
	exchangeData(t, e, p, 1)
	if err := e.tun.SetPrivateKey(noise.PrivateKey{}); err != nil {
		t.Fatal(err)
	}
	if !e.tun.PublicKey().IsZero() || e.tun.index.Len() != 0 {
		t.Fatalf("after removing the key: public %s, %d indices", e.tun.PublicKey(), e.tun.index.Len())
	}
	p.sendInitiation()
	waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropNoPrivateKey) == 1 },
		func() string { return "initiation not dropped as no_private_key\n" + fmtStats(e.tun.Stats()) })
	p.expectNothing(10 * time.Millisecond)
}

// TestPrivateKeyChangeInterop: against wireguard-go, an independent
// implementation, traffic resumes after PipeGuard's key changes and the
// device is told the new public key over its own UAPI.
func TestPrivateKeyChangeInterop(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			leakCheck(t)
			net := memudp.NewNetworkConfig(blocking)
			pg := startTunnel(t, net, tunnelSpec{udp: netip.MustParseAddrPort("192.0.2.1:51820"), inner: hostA.v4, engine: engine, workers: 2})
			wg := startWG(t, net, netip.MustParseAddrPort("192.0.2.2:51821"), pg, hostA)
			atPG := checkFlows(pg, hostA, []host{hostB}, false)
			atWG := wg.checkFlows(hostB, []host{hostA})
			st := stats(pg)
			flow := func(first, n uint32) {
				t.Helper()
				if err := sendFlows(pg, hostA, []host{hostB}, first, n); err != nil {
					t.Fatal(err)
				}
				atWG.wait(t, 0, first+n, 5*time.Second, st)
				if err := wg.sendFlow(hostB, hostA, first, n); err != nil {
					t.Fatal(err)
				}
				atPG.wait(t, 0, first+n, 5*time.Second, st)
			}
			flow(0, 10)

			old := pg.key.Public()
			next := mustKey(t)
			if err := pg.tun.SetPrivateKey(next); err != nil {
				t.Fatal(err)
			}
			pub := next.Public()
			if err := wg.dev.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\npublic_key=%s\nendpoint=%s\nallowed_ip=%s/32\nallowed_ip=%s/128\n",
				hex.EncodeToString(old[:]), hex.EncodeToString(pub[:]), pg.udp, hostA.v4, hostA.v6)); err != nil {
				t.Fatal(err)
			}
			flow(10, 10)
		})
	}
}
