package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/cmd/internal/tcpcheck"
)

// Addresses that only the far namespace has (on its loopback): without a
// full tunnel, the near namespace has no route to them at all, so an
// answer proves the tunnel carried the packets.
var (
	farV4 = netip.MustParseAddr("198.51.100.7")
	farV6 = netip.MustParseAddr("2001:db8:ff::7")
)

// fullTunnelPeer is z as a [Peer] that takes everything: 0.0.0.0/0, ::/0.
func fullTunnelPeer(z *node) config.Peer {
	p := z.asPeer(true)
	p.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	return p
}

// giveFarAddresses puts farV4 and farV6 on ns's loopback.
func giveFarAddresses(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	ns.MustRun(t, "ip", "addr", "add", farV4.String()+"/32", "dev", "lo")
	ns.MustRun(t, "ip", "addr", "add", farV6.String()+"/128", "dev", "lo", "nodad")
}

// policyState is what the near namespace's policy routing looks like:
// both rule lists and the full tunnel's table (empty if it has none).
func policyState(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	out := ns.MustRun(t, "ip", "-4", "rule", "show") + ns.MustRun(t, "ip", "-6", "rule", "show")
	for _, fam := range []string{"-4", "-6"} {
		if o, err := ns.Run("ip", fam, "route", "show", "table", "51820"); err == nil {
			out += o
		} else if !strings.Contains(o, "does not exist") {
			t.Fatalf("ip %s route show table 51820: %v\n%s", fam, err, o)
		}
	}
	return out
}

// pingOut pings dst from ns with extra arguments and returns the output
// and whether ping succeeded.
func pingOut(ns *netnstest.NS, dst netip.Addr, args ...string) (string, bool) {
	out, err := ns.Run("ping", append(append([]string{"-c", "2", "-i", "0.2", "-w", "8"}, args...), dst.String())...)
	return out, err == nil
}

// transferTo sends size bytes of TCP from n to dst, served in ns, and
// fails the test unless they arrive intact.
func transferTo(t *testing.T, n *node, ns *netnstest.NS, dst netip.AddrPort, size int64) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", dst.String()); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(ctx context.Context) (c net.Conn, err error) {
		err = n.ns.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", dst.String())
			return err
		})
		return c, err
	}
	res, err := tcpcheck.Transfer(ctx, ln, dial, size, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatalf("TCP to %s: %v", dst, err)
	}
	t.Logf("TCP to %s: %d MB in %v", dst, res.Bytes>>20, res.Duration.Round(time.Millisecond))
}

// startClientIn runs the client for n with a state directory the caller
// keeps (the full tunnel's rules are recorded there).
func (n *node) startClientIn(t *testing.T, b bins, stateDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--log-level", "debug", "standalone", "--config", n.conf, "--interface", n.iface, "--state-dir", stateDir}, extra...)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := start(t, n.ns, "client "+n.iface, b.client, []string{"PIPEGUARD_ID=e2e-" + n.iface}, args...)
	p.waitSocket(t, n.iface)
	return p
}

// TestFullTunnelStandalone: standalone with AllowedIPs = 0.0.0.0/0, ::/0
// against a wireguard-go peer reaches addresses only the far side has,
// by IPv4 and IPv6 ping and by TCP, with wg-quick's policy routing in
// place; SIGTERM removes every rule, route and table entry.
func TestFullTunnelStandalone(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	giveFarAddresses(t, z.ns)
	if out, ok := pingOut(a.ns, farV4, "-c", "1", "-w", "1"); ok {
		t.Fatalf("%s answers without the tunnel; the test would prove nothing:\n%s", farV4, out)
	}
	before := policyState(t, a.ns)
	a.writeConfig(t, fullTunnelPeer(z))
	z.writeConfig(t, a.asPeer(true))
	pz := z.startWGPeer(t, b)
	state := t.TempDir()
	pa := a.startClientIn(t, b, state)

	rules := policyState(t, a.ns)
	for _, want := range []string{
		"not from all fwmark 0xca6c lookup 51820",
		"from all lookup main suppress_prefixlength 0",
		"default dev " + a.iface,
	} {
		if strings.Count(rules, want) != 2 {
			t.Errorf("want %q once per family:\n%s", want, rules)
		}
	}
	if show := wg(t, "show", a.iface, "fwmark"); strings.TrimSpace(show) != "0xca6c" {
		t.Errorf("wg show fwmark: %q, want 0xca6c", show)
	}
	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(a.ns, dst); !ok {
			t.Fatalf("ping %s through the full tunnel:\n%s", dst, out)
		}
	}
	transferTo(t, a, z.ns, netip.AddrPortFrom(farV4, 5201), 10<<20)
	transferTo(t, a, z.ns, netip.AddrPortFrom(farV6, 5202), 10<<20)
	// A link bounce drops the table's default routes; they come back.
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "down")
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "up")
	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(a.ns, dst); !ok {
			t.Fatalf("ping %s after a link bounce:\n%s\n%s", dst, out, policyState(t, a.ns))
		}
	}
	// The endpoint is still reached directly, outside the tunnel.
	if out := a.ns.MustRun(t, "ip", "route", "get", z.outer.String(), "mark", "51820"); !strings.Contains(out, "dev va") {
		t.Errorf("marked packets to the endpoint:\n%s", out)
	}

	stopAndCheck(t, pa, a)
	if got := policyState(t, a.ns); got != before {
		t.Errorf("after SIGTERM:\n%s\nwant as before:\n%s", got, before)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "rules.*")); len(left) != 0 {
		t.Errorf("state files left: %v", left)
	}
	if code, _ := pz.stop(t, syscall.SIGTERM, 3*time.Second); code != 0 {
		t.Errorf("wgpeer exited %d", code)
	}
}

// TestFullTunnelAfterSIGKILL: a full tunnel killed outright leaves its
// policy rules and unreachable routes (the interface, its routes and
// socket go with the process); the next start of the same interface
// takes them over, so one run's rules are in place, and its SIGTERM
// leaves none.
func TestFullTunnelAfterSIGKILL(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	giveFarAddresses(t, z.ns)
	before := policyState(t, a.ns)
	a.writeConfig(t, fullTunnelPeer(z))
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)
	state := t.TempDir()

	p1 := a.startClientIn(t, b, state)
	p1.cmd.Process.Kill()
	<-p1.exit
	p1.exit <- nil
	waitFor(t, func() bool { _, err := a.ns.Run("ip", "link", "show", a.iface); return err != nil })
	os.Remove(uapi.SocketPath(a.iface)) // a killed process cannot remove it
	left := policyState(t, a.ns)
	if strings.Count(left, "lookup 51820") != 2 || strings.Count(left, "suppress_prefixlength 0") != 2 {
		t.Fatalf("the killed run's rules are not there; the test would prove nothing:\n%s", left)
	}

	p2 := a.startClientIn(t, b, state)
	if !strings.Contains(p2.out.String(), "took over the policy rules and routes a previous run left") {
		t.Errorf("the restart does not say it took over the leftovers:\n%s", p2.out)
	}
	now := policyState(t, a.ns)
	if strings.Count(now, "lookup 51820") != 2 || strings.Count(now, "suppress_prefixlength 0") != 2 {
		t.Errorf("after the restart, want one run's rules:\n%s", now)
	}
	if out, ok := pingOut(a.ns, farV4); !ok {
		t.Errorf("ping %s after the restart:\n%s", farV4, out)
	}
	stopAndCheck(t, p2, a)
	if got := policyState(t, a.ns); got != before {
		t.Errorf("after SIGTERM:\n%s\nwant as before:\n%s", got, before)
	}
}

// TestConflictingRouteRefused: a route for
// an AllowedIPs prefix through another interface already exists, so the
// tunnel could not carry that prefix (before the fix it started anyway,
// and the prefix's traffic left on the veth in cleartext). The start is
// refused with exit 1 and a last line naming the route, for IPv4 and
// IPv6, and nothing of the tunnel is left.
func TestConflictingRouteRefused(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	veth := strings.Fields(a.ns.MustRun(t, "ip", "-o", "-4", "addr", "show", "to", a.outer.String()))[1]
	a.ns.MustRun(t, "ip", "addr", "add", "fd99::1/64", "dev", veth, "nodad")
	a.ns.MustRun(t, "ip", "route", "add", "10.78.0.0/24", "via", z.outer.String(), "dev", veth)
	a.ns.MustRun(t, "ip", "-6", "route", "add", "fd78::/64", "via", "fd99::2", "dev", veth)
	for _, tc := range []struct{ prefix, route string }{
		{"10.78.0.0/24", "10.78.0.0/24 via " + z.outer.String() + " dev " + veth},
		{"fd78::/64", "fd78::/64 via fd99::2 dev " + veth},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			p := z.asPeer(true)
			p.AllowedIPs = append(p.AllowedIPs, netip.MustParsePrefix(tc.prefix))
			a.writeConfig(t, p)
			assertRefused(t, a.ns, []string{b.client, "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir()},
				tc.route, "AllowedIPs "+tc.prefix, "unencrypted")
			assertGone(t, a)
			// The prefix still goes where the admin's route sends it, not
			// into a half-started tunnel.
			dst := strings.TrimSuffix(tc.prefix, "0/24") + "5"
			if strings.Contains(tc.prefix, ":") {
				dst = strings.TrimSuffix(tc.prefix, "/64") + "5"
			}
			if out := a.ns.MustRun(t, "ip", "route", "get", dst); !strings.Contains(out, "dev "+veth) {
				t.Errorf("ip route get %s:\n%s", dst, out)
			}
		})
	}
}

// TestLinkBounceRestoresRoutes: after `ip
// link set IFACE down; up` the kernel has dropped the routes (and the
// IPv6 address); before the fix they stayed gone until a restart, now
// traffic flows again at once, both families. The far addresses are
// reached only by routes of the client's own (not by the subnet routes
// of its addresses, which the kernel restores for IPv4 by itself).
func TestLinkBounceRestoresRoutes(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	giveFarAddresses(t, z.ns)
	p := z.asPeer(true)
	p.AllowedIPs = append(p.AllowedIPs, netip.PrefixFrom(farV4, 32), netip.PrefixFrom(farV6, 128))
	a.writeConfig(t, p)
	z.writeConfig(t, a.asPeer(true))
	pa := a.startClient(t, b)
	z.startWGPeer(t, b)
	a.ping(t, farV4)
	for round := range 2 {
		a.ns.MustRun(t, "ip", "link", "set", a.iface, "down")
		a.ns.MustRun(t, "ip", "link", "set", a.iface, "up")
		for _, dst := range []netip.Addr{farV4, farV6, z.inner[1].Addr()} {
			if out, ok := pingOut(a.ns, dst); !ok {
				t.Fatalf("round %d: ping %s after a link bounce:\n%s\nroutes:\n%s", round, dst, out,
					a.ns.MustRun(t, "ip", "route", "show")+a.ns.MustRun(t, "ip", "-6", "route", "show"))
			}
		}
	}
	if !strings.Contains(pa.out.String(), "link up again: restored what it lost") {
		t.Errorf("the client does not log the restore:\n%s", pa.out)
	}
	stopAndCheck(t, pa, a)
}

// TestMTURaised: the interface MTU raised to 1420 (as wg-quick does) is
// set back to 1280 with one warning; then a 1400-byte ping with DF set
// fails loudly on the host, never silently in the tunnel.
func TestMTURaised(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	pa := a.startClient(t, b)
	z.startWGPeer(t, b)
	a.ping(t, z.inner[0].Addr())
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "mtu", "1420")
	waitFor(t, func() bool { return strings.Contains(a.ns.MustRun(t, "ip", "link", "show", a.iface), " mtu 1280 ") })
	waitFor(t, func() bool { return strings.Count(pa.out.String(), "interface MTU 1420 set back to 1280") == 1 })
	for _, c := range []struct {
		dst  netip.Addr
		size string // 1400 bytes with the header
	}{{z.inner[0].Addr(), "1372"}, {z.inner[1].Addr(), "1352"}} {
		out, ok := pingOut(a.ns, c.dst, "-M", "do", "-s", c.size, "-c", "1")
		if ok || !strings.Contains(strings.ToLower(out), "message too long") {
			t.Errorf("1400-byte DF ping to %s: ok %v, want a local error:\n%s", c.dst, ok, out)
		}
		t.Logf("ping -M do -s %s %s: %s", c.size, c.dst, strings.TrimSpace(out))
	}
	// 1280 still passes, both ways.
	if out, ok := pingOut(a.ns, z.inner[0].Addr(), "-M", "do", "-s", "1252"); !ok {
		t.Errorf("1280-byte DF ping:\n%s", out)
	}
	if n := strings.Count(pa.out.String(), "set back to 1280"); n != 1 {
		t.Errorf("%d MTU warnings, want 1:\n%s", n, pa.out)
	}
	stopAndCheck(t, pa, a)
}

// TestOversizedFromPeer: a wireguard-go peer at MTU 1420 sends inner
// packets of 1400 bytes; they are dropped, counted under too_big at
// udprecv, and the peer is logged once with the fix.
func TestOversizedFromPeer(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	pa := a.startClient(t, b, "--metrics-addr", "127.0.0.1:9586")
	t.Cleanup(func() { os.Remove(uapi.SocketPath(z.iface)) })
	start(t, z.ns, "wgpeer "+z.iface, b.wgpeer, nil, "--config", z.conf, "--interface", z.iface, "--uapi", "--mtu", "1420").waitSocket(t, z.iface)
	z.ping(t, a.inner[0].Addr()) // a session, so the drop can name the peer
	const n = 3
	out, ok := pingOut(z.ns, a.inner[0].Addr(), "-M", "do", "-s", "1372", "-c", fmt.Sprint(n), "-w", "3")
	if ok {
		t.Fatalf("1400-byte packets from the peer were answered:\n%s", out)
	}
	metrics := func() float64 {
		return sample(t, httpGetIn(t, a, "http://127.0.0.1:9586/metrics"), `pipeguard_stage_drops_total{stage="udprecv",reason="too_big"}`)
	}
	waitFor(t, func() bool { return metrics() >= n })
	if c := strings.Count(pa.out.String(), "set MTU = 1280 on that peer"); c != 1 {
		t.Errorf("%d log lines with the fix, want 1:\n%s", c, pa.out)
	}
	if !strings.Contains(pa.out.String(), "peer="+z.key.Public().String()[:8]) {
		t.Errorf("the log does not name the peer:\n%s", pa.out)
	}
	// Packets of 1280 bytes still pass.
	if out, ok := pingOut(z.ns, a.inner[0].Addr(), "-M", "do", "-s", "1252"); !ok {
		t.Errorf("1280-byte ping from the peer:\n%s", out)
	}
	stopAndCheck(t, pa, a)
}
