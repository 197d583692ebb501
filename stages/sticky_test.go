package stages

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/tunio/memudp"
)

// multiHomed is a responder with several addresses on one in-memory
// network, and a peer that writes to each in turn, as the kernel's
// selftest (netns.sh) does with `wg set ... endpoint` and a ping.
type multiHomed struct {
	net       *memudp.Network
	responder *end // listens on [::]:51820; routing picks 192.0.2.1 or fd00:aa::1
	peer      *end // at 192.0.2.9 and fd00:aa::9, port 51821
}

func newMultiHomed(t *testing.T, dp dataplane) *multiHomed {
	t.Helper()
	leakCheck(t)
	m := &multiHomed{net: memudp.NewNetworkConfig(blocking)}
	kr, kp := mustKey(t), mustKey(t)
	spec := func(key noise.PrivateKey, udp string, inner netip.Addr, peer PeerConfig) tunnelSpec {
		return tunnelSpec{key: key, udp: netip.MustParseAddrPort(udp), inner: inner,
			engine: dp.engine, noInline: dp.noInline, inlineMax: dp.inlineMax, peers: []PeerConfig{peer}}
	}
	m.responder = startTunnel(t, m.net, spec(kr, "[::]:51820", hostA.v4,
		PeerConfig{PublicKey: kp.Public(), AllowedIPs: allowedIPs(hostB, false)}))
	m.responder.conn.SetRouteSources(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fd00:aa::1"))
	m.peer = startTunnel(t, m.net, spec(kp, "[::]:51821", hostB.v4,
		PeerConfig{PublicKey: kr.Public(), AllowedIPs: allowedIPs(hostA, false)}))
	m.peer.conn.SetRouteSources(netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("fd00:aa::9"))
	return m
}

// ping sends one packet from the peer to the responder through the tunnel
// and one back, and waits for each.
func (m *multiHomed) ping(t *testing.T, seq uint32) {
	t.Helper()
	m.peer.inject(t, ipv4(hostB.v4, hostA.v4, 84, seq))
	if got := m.responder.recv(t, 5*time.Second); seqOf(got) != seq {
		t.Fatalf("request %d arrived as %d", seq, seqOf(got))
	}
	m.responder.inject(t, ipv4(hostA.v4, hostB.v4, 84, seq))
	if got := m.peer.recv(t, 5*time.Second); seqOf(got) != seq {
		t.Fatalf("reply %d arrived as %d", seq, seqOf(got))
	}
}

// local is the local address the responder sends to the peer from.
func (m *multiHomed) local() tunio.Local {
	_, l := m.responder.tun.peers.Load().key(m.peer.key.Public()).sendTo()
	return l
}

// TestAnswersFromAddressWrittenTo: whichever of the responder's addresses
// the peer writes to, both families, the answer comes from it, so the
// peer's endpoint stays the address it wrote to. (A reply from the
// address routing picks would move the peer's endpoint there.) The
// handshake's response and the data both answer from it, in every engine.
func TestAnswersFromAddressWrittenTo(t *testing.T) {
	for _, dp := range dataplanes {
		t.Run(dp.name, func(t *testing.T) {
			m := newMultiHomed(t, dp)
			pk := m.responder.key.Public()
			for i, to := range []string{
				"192.0.2.1:51820", "[fd00:aa::1]:51820",
				"192.0.2.2:51820", "[fd00:aa::2]:51820",
				"198.51.100.1:51820", // another interface's, on the kernel's test
			} {
				ep := netip.MustParseAddrPort(to)
				if err := m.peer.tun.UpdatePeer(pk, PeerUpdate{Endpoint: &ep}); err != nil {
					t.Fatal(err)
				}
				m.ping(t, uint32(i))
				if got, _ := m.peer.tun.Peer(pk); got.Endpoint != ep {
					t.Fatalf("after writing to %v, the peer's endpoint is %v", ep, got.Endpoint)
				}
				if l := m.local(); l.Addr() != ep.Addr() || l.IfIndex() != memudp.IfIndex {
					t.Fatalf("responder sends from %v, want %v", l, ep.Addr())
				}
			}
		})
	}
}

// TestLocalAddressGone: when the address the peer wrote to goes away, the
// responder's next datagram leaves from the address routing picks (the
// socket refused the old one), the responder forgets the old one, and the
// peer roams to the new one; traffic goes on.
func TestLocalAddressGone(t *testing.T) {
	for _, dp := range dataplanes {
		t.Run(dp.name, func(t *testing.T) {
			m := newMultiHomed(t, dp)
			pk := m.responder.key.Public()
			gone := netip.MustParseAddrPort("192.0.2.2:51820")
			if err := m.peer.tun.UpdatePeer(pk, PeerUpdate{Endpoint: &gone}); err != nil {
				t.Fatal(err)
			}
			m.ping(t, 1)
			if m.local().Addr() != gone.Addr() {
				t.Fatalf("responder sends from %v, want %v", m.local(), gone.Addr())
			}
			m.net.RemoveAddr(gone.Addr())
			m.responder.inject(t, ipv4(hostA.v4, hostB.v4, 84, 2))
			if got := m.peer.recv(t, 5*time.Second); seqOf(got) != 2 {
				t.Fatalf("packet 2 arrived as %d", seqOf(got))
			}
			waitFor(t, 5*time.Second, func() bool { return m.local() != tunio.LocalFrom(gone.Addr(), memudp.IfIndex) },
				func() string { return fmt.Sprintf("responder still sends from %v", m.local()) })
			routed := netip.MustParseAddrPort("192.0.2.1:51820")
			if got, _ := m.peer.tun.Peer(pk); got.Endpoint != routed {
				t.Fatalf("peer's endpoint %v, want %v", got.Endpoint, routed)
			}
			m.ping(t, 3)
			if m.local().Addr() != routed.Addr() {
				t.Fatalf("responder sends from %v, want %v", m.local(), routed.Addr())
			}
		})
	}
}

// TestLocalAddressRules: what sets and what clears the local address a
// peer's datagrams leave from.
func TestLocalAddressRules(t *testing.T) {
	ep := netip.MustParseAddrPort("192.0.2.9:51820")
	l1 := tunio.LocalFrom(netip.MustParseAddr("192.0.2.1"), 3)
	l2 := tunio.LocalFrom(netip.MustParseAddr("192.0.2.2"), 3)
	l6 := tunio.LocalFrom(netip.MustParseAddr("fd00:aa::1"), 3)
	tests := []struct {
		name      string
		do        func(tn *Tunnel, p *peer)
		wantAddr  netip.AddrPort
		wantLocal tunio.Local
	}{
		{"an authenticated datagram sets it", func(*Tunnel, *peer) {}, ep, l1},
		{"a datagram to another address moves it", func(_ *Tunnel, p *peer) { p.roam(ep, l2) }, ep, l2},
		{"a refused send forgets it", func(tn *Tunnel, p *peer) { tn.localGone(p, l1) }, ep, tunio.Local{}},
		{"a refused send of an older address does not", func(tn *Tunnel, p *peer) { tn.localGone(p, l2) }, ep, l1},
		{"removing the address forgets it", func(tn *Tunnel, _ *peer) { tn.ForgetLocalAddr(l1.Addr()) }, ep, tunio.Local{}},
		{"v4-mapped too", func(tn *Tunnel, _ *peer) { tn.ForgetLocalAddr(netip.MustParseAddr("::ffff:192.0.2.1")) }, ep, tunio.Local{}},
		{"removing another address does not", func(tn *Tunnel, _ *peer) { tn.ForgetLocalAddr(l2.Addr()) }, ep, l1},
		{"removing another family's does not", func(tn *Tunnel, _ *peer) { tn.ForgetLocalAddr(l6.Addr()) }, ep, l1},
		{"lost notifications forget it", func(tn *Tunnel, _ *peer) { tn.ForgetLocalAddrs() }, ep, tunio.Local{}},
		{"wg set endpoint forgets it, the same endpoint too", func(tn *Tunnel, p *peer) {
			tn.UpdatePeer(p.publicKey, PeerUpdate{Endpoint: &ep})
		}, ep, tunio.Local{}},
		{"wg set without an endpoint keeps it", func(tn *Tunnel, p *peer) {
			k := 25 * time.Second
			tn.UpdatePeer(p.publicKey, PeerUpdate{PersistentKeepalive: &k})
		}, ep, l1},
		{"a reload with the same endpoint keeps it", func(tn *Tunnel, p *peer) {
			tn.SyncPeers(nil, []PeerConfig{{PublicKey: p.publicKey, Endpoint: ep}})
		}, ep, l1},
		{"a reload with another endpoint forgets it", func(tn *Tunnel, p *peer) {
			tn.SyncPeers(nil, []PeerConfig{{PublicKey: p.publicKey, Endpoint: netip.MustParseAddrPort("192.0.2.8:1")}})
		}, netip.MustParseAddrPort("192.0.2.8:1"), tunio.Local{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := withRawPeer(t, tunnelSpec{})
			p := firstPeer(e.tun)
			p.roam(ep, l1)
			tt.do(e.tun, p)
			p = firstPeer(e.tun)
			if addr, l := p.sendTo(); addr != tt.wantAddr || l != tt.wantLocal {
				t.Fatalf("endpoint %v from %v, want %v from %v", addr, l, tt.wantAddr, tt.wantLocal)
			}
		})
	}
}

// TestRoamUnchangedAllocatesNothing: a datagram from the endpoint and to
// the local address the peer has already costs no allocation.
func TestRoamUnchangedAllocatesNothing(t *testing.T) {
	p := &peer{}
	ep := netip.MustParseAddrPort("192.0.2.9:51820")
	l := tunio.LocalFrom(netip.MustParseAddr("192.0.2.1"), 3)
	p.roam(ep, l)
	if n := testing.AllocsPerRun(100, func() { p.roam(ep, l) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// TestCheckLocalAddrs: a local address is kept while the route to the
// peer from it leaves by the interface the peer's datagram came in on.
func TestCheckLocalAddrs(t *testing.T) {
	ep := netip.MustParseAddrPort("192.0.2.9:51820")
	src := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name   string
		local  tunio.Local
		out    int   // the interface routeOut reports
		err    error // routeOut's error
		forgot bool
	}{
		{"same interface", tunio.LocalFrom(src, 3), 3, nil, false},
		{"another interface", tunio.LocalFrom(src, 3), 4, nil, true},
		{"no route from it", tunio.LocalFrom(src, 3), 0, ErrNoPeer, true},
		{"arrival interface unknown", tunio.LocalFrom(src, 0), 4, nil, false},
		{"no local address", tunio.Local{}, 4, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := withRawPeer(t, tunnelSpec{})
			p := firstPeer(e.tun)
			p.roam(ep, tt.local)
			var asked []netip.Addr
			n := e.tun.CheckLocalAddrs(func(dst, from netip.Addr) (int, error) {
				asked = append(asked, dst, from)
				return tt.out, tt.err
			})
			_, l := p.sendTo()
			if gone := l != tt.local; gone != tt.forgot || (n == 1) != tt.forgot {
				t.Fatalf("local now %v, %d forgotten; want forgotten %v", l, n, tt.forgot)
			}
			if len(asked) > 0 && (asked[0] != ep.Addr() || asked[1] != src) {
				t.Fatalf("asked for the route to %v from %v", asked[0], asked[1])
			}
		})
	}
}
