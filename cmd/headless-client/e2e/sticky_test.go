package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"pipeguard/cmd/internal/netnstest"
)

// The source address of replies on a multi-homed host, as the kernel's
// WireGuard selftest (tools/testing/selftests/wireguard/netns.sh) checks
// it: a PipeGuard tunnel, started empty and configured with wg(8) as the
// test starts a userspace WireGuard, answers a peer from the address the
// peer wrote to, forgets an address that is removed, and follows routing
// when a route by another interface takes over.

// stickyKinds are the peers the PipeGuard responder is tried with:
// another PipeGuard, and Debian's wireguard-go, an implementation of its
// own.
var stickyKinds = []string{"pipeguard", "wireguard-go"}

// startEmpty starts n empty, as kind, configures it with wg setconf to
// listen on port with peer as its one peer (no endpoint), and gives it its
// tunnel addresses.
func startEmpty(t *testing.T, b bins, kind string, n *node, port uint16, peer *node) *proc {
	t.Helper()
	var p *proc
	switch kind {
	case "pipeguard":
		p = startEmptyTunnel(t, b, n)
	case "wireguard-go":
		bin, err := exec.LookPath("wireguard-go")
		if err != nil {
			t.Fatal("wireguard-go (Debian's package) is needed; scripts/setup.sh installs it")
		}
		p = startDebianWireguardGo(t, n, bin)
		n.ns.MustRun(t, "ip", "address", "add", n.inner[0].String(), "dev", n.iface)
		n.ns.MustRun(t, "ip", "address", "add", n.inner[1].String(), "dev", n.iface, "nodad")
		n.ns.MustRun(t, "ip", "link", "set", n.iface, "up")
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	n.ns.MustRun(t, "ip", "link", "set", n.iface, "mtu", "1280")
	n.port = port
	wg(t, "setconf", n.iface, wgConf(t, fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = %d\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32, %s/128\n",
		n.key, port, peer.key.Public(), peer.inner[0].Addr(), peer.inner[1].Addr())))
	return p
}

// writeTo points n at its peer's address to and pings the peer through
// the tunnel; then n's `wg show endpoints` must name exactly to.
func writeTo(t *testing.T, n, peer *node, to netip.AddrPort) {
	t.Helper()
	wg(t, "set", n.iface, "peer", peer.key.Public().String(), "endpoint", to.String())
	n.pingWithin(t, peer.inner[0].Addr(), 10*time.Second)
	if got, want := strings.TrimSpace(wgShow(t, n, "endpoints")), peer.key.Public().String()+"\t"+to.String(); got != want {
		t.Fatalf("after writing to %v: wg show %s endpoints = %q, want %q", to, n.iface, got, want)
	}
}

// endpointOf is n's endpoint for its one peer, as wg show prints it.
func endpointOf(t *testing.T, n *node) netip.AddrPort {
	t.Helper()
	f := strings.Fields(wgShow(t, n, "endpoints"))
	if len(f) != 2 {
		t.Fatalf("wg show %s endpoints: %q", n.iface, f)
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil {
		t.Fatalf("wg show %s endpoints: %v", n.iface, err)
	}
	return ap
}

// TestRepliesFromAddressWrittenTo: the responder (PipeGuard) has two IPv4
// and two IPv6 addresses on its link, and 10.50.0.1 on another interface
// that the peer reaches over the link; the peer writes to each in turn,
// and each time records as the responder's endpoint exactly the address
// it wrote to. Then, the responder writing first, the address its
// datagrams came from is removed (IPv4, then IPv6): the next ping gets
// through, from another address, which the peer follows.
func TestRepliesFromAddressWrittenTo(t *testing.T) {
	b := binaries(t)
	for _, kind := range stickyKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns1, ns2 := netnstest.New(t), netnstest.New(t)
			link1, link2 := netnstest.Link(t, ns1, ns2, netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.3/24"))
			// Removing a primary address keeps the secondaries.
			ns1.MustRun(t, "sysctl", "-qw", "net.ipv4.conf."+link1+".promote_secondaries=1")
			ns1.MustRun(t, "ip", "addr", "add", "10.0.0.2/24", "dev", link1)
			for _, a := range []string{"fd00:aa::1/96", "fd00:aa::2/96"} {
				ns1.MustRun(t, "ip", "addr", "add", a, "dev", link1, "nodad")
			}
			ns2.MustRun(t, "ip", "addr", "add", "fd00:aa::3/96", "dev", link2, "nodad")
			// Another interface of the responder's (a veth pair with
			// both ends at home: this kernel may have no dummy driver).
			other := netnstest.UniqueName("vo")
			ns1.MustRun(t, "ip", "link", "add", other, "type", "veth", "peer", "name", other+"p")
			ns1.MustRun(t, "ip", "addr", "add", "10.50.0.1/24", "dev", other)
			ns1.MustRun(t, "ip", "link", "set", other, "up")
			ns1.MustRun(t, "ip", "link", "set", other+"p", "up")
			ns2.MustRun(t, "ip", "route", "add", "10.50.0.0/24", "dev", link2)

			r := newNode(t, ns1, netip.MustParseAddr("10.0.0.1"), 1)
			p := newNode(t, ns2, netip.MustParseAddr("10.0.0.3"), 2)
			startEmpty(t, b, "pipeguard", r, 1, p)
			startEmpty(t, b, kind, p, 2, r)

			for _, to := range []string{"10.0.0.1:1", "[fd00:aa::1]:1", "10.0.0.2:1", "[fd00:aa::2]:1", "10.50.0.1:1"} {
				writeTo(t, p, r, netip.MustParseAddrPort(to))
			}

			// Not too sticky: the responder writes first, and the
			// address it wrote from goes away.
			for _, family := range []struct {
				peerAt, spare string
			}{
				{"10.0.0.3:2", "10.0.0.10/24"},
				{"[fd00:aa::3]:2", "fd00:aa::10/96"},
			} {
				wg(t, "set", r.iface, "peer", p.key.Public().String(), "endpoint", family.peerAt)
				r.pingWithin(t, p.inner[0].Addr(), 10*time.Second)
				from := endpointOf(t, p).Addr()
				bits := 24
				if from.Is6() {
					bits = 96
				}
				ns1.MustRun(t, "ip", "addr", "add", family.spare, "dev", link1, "nodad")
				ns1.MustRun(t, "ip", "addr", "del", netip.PrefixFrom(from, bits).String(), "dev", link1)
				r.pingWithin(t, p.inner[0].Addr(), 10*time.Second)
				if now := endpointOf(t, p).Addr(); now == from {
					t.Fatalf("the responder still writes from %v, which it no longer has", from)
				}
				t.Logf("wrote from %v; after its removal, from %v", from, endpointOf(t, p).Addr())
			}
		})
	}
}

// TestRepliesFollowRouting: the responder (PipeGuard) wrote from 10.0.0.1
// on its first link; a route by a second link, with its own address
// 10.0.0.3, takes over (lower metric): the next datagram leaves by the
// new route from 10.0.0.3, as kernel WireGuard's would, and the peer
// records that.
func TestRepliesFollowRouting(t *testing.T) {
	b := binaries(t)
	for _, kind := range stickyKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns1, ns2 := netnstest.New(t), netnstest.New(t)
			link1, _ := netnstest.Link(t, ns1, ns2, netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.2/24"))
			link3, link4 := netnstest.Link(t, ns1, ns2, netip.MustParsePrefix("10.0.0.3/24"), netip.MustParsePrefix("10.0.0.4/24"))
			ns2.MustRun(t, "ip", "addr", "del", "10.0.0.4/24", "dev", link4)
			ns1.MustRun(t, "ip", "route", "flush", "dev", link1)
			ns1.MustRun(t, "ip", "route", "flush", "dev", link3)
			ns1.MustRun(t, "ip", "route", "add", "10.0.0.0/24", "dev", link1, "src", "10.0.0.1", "metric", "2")

			r := newNode(t, ns1, netip.MustParseAddr("10.0.0.1"), 1)
			p := newNode(t, ns2, netip.MustParseAddr("10.0.0.2"), 2)
			pr := startEmpty(t, b, "pipeguard", r, 1, p)
			startEmpty(t, b, kind, p, 2, r)

			wg(t, "set", r.iface, "peer", p.key.Public().String(), "endpoint", "10.0.0.2:2")
			r.pingWithin(t, p.inner[0].Addr(), 10*time.Second)
			if got := endpointOf(t, p); got != netip.MustParseAddrPort("10.0.0.1:1") {
				t.Fatalf("peer's endpoint %v, want 10.0.0.1:1", got)
			}
			checks := strings.Count(pr.out.String(), routingChecked)
			ns1.MustRun(t, "ip", "route", "add", "10.0.0.0/24", "dev", link3, "src", "10.0.0.3", "metric", "1")
			for _, c := range []struct {
				ns  *netnstest.NS
				dev string
			}{{ns1, link1}, {ns2, link4}, {ns1, "all"}, {ns2, "all"}} {
				c.ns.MustRun(t, "sysctl", "-qw", "net.ipv4.conf."+c.dev+".rp_filter=0")
			}
			// The route check has run: it forgot 10.0.0.1.
			waitFor(t, func() bool { return strings.Count(pr.out.String(), routingChecked) > checks })
			r.pingWithin(t, p.inner[0].Addr(), 10*time.Second)
			if got := endpointOf(t, p); got != netip.MustParseAddrPort("10.0.0.3:1") {
				t.Fatalf("after the new route, the peer's endpoint is %v, want 10.0.0.3:1", got)
			}
		})
	}
}

// routingChecked is what the client logs (at debug) when a route check
// made peers leave from the address routing picks.
const routingChecked = "routing changed: peers answered from the address routing picks"
