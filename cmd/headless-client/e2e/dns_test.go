package e2e

import (
	"crypto/sha256"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/dns/resolvconftest"
	"pipeguard/cmd/headless-client/dns/resolvedtest"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
)

// origResolvConf is what a test namespace's /etc/resolv.conf holds
// before any tunnel runs; the marker tells it from any other file.
const origResolvConf = "# the namespace's own resolv.conf (pipeguard e2e)\nnameserver 192.0.2.53\n"

// guardHostResolvConf fails the test if the host's /etc/resolv.conf
// changed by the end of it: DNS tests must touch only their namespaces'.
func guardHostResolvConf(t *testing.T) {
	t.Helper()
	sum := func() [32]byte {
		b, _ := os.ReadFile("/etc/resolv.conf")
		return sha256.Sum256(b)
	}
	before := sum()
	t.Cleanup(func() {
		if sum() != before {
			t.Errorf("the HOST's /etc/resolv.conf changed during the test")
		}
	})
}

// writeDNSConfig writes n's config (no peers) with DNS servers and
// search domains.
func (n *node) writeDNSConfig(t *testing.T, servers []string, search ...string) {
	t.Helper()
	c := config.Config{Interface: config.Interface{PrivateKey: n.key, Addresses: n.inner[:], ListenPort: n.port, MTU: config.DefaultMTU, DNSSearch: search}}
	for _, s := range servers {
		c.Interface.DNS = append(c.Interface.DNS, netip.MustParseAddr(s))
	}
	if err := os.WriteFile(n.conf, []byte(c.Format()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startIn runs the client for n with the given state directory (tunnels
// of one host share it) and waits until it is up.
func (n *node) startIn(t *testing.T, b bins, stateDir string, extra ...string) *proc {
	t.Helper()
	return n.startWith(t, b, stateDir, nil, extra...)
}

// startWith is startIn with more environment.
func (n *node) startWith(t *testing.T, b bins, stateDir string, env []string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--log-level", "debug", "standalone", "--config", n.conf, "--interface", n.iface, "--state-dir", stateDir}, extra...)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := start(t, n.ns, "client "+n.iface, b.client, append([]string{"PIPEGUARD_ID=e2e-" + n.iface}, env...), args...)
	p.waitSocket(t, n.iface)
	return p
}

// resolvConf is the namespace's /etc/resolv.conf as its programs see it.
func resolvConf(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	return ns.MustRun(t, "cat", "/etc/resolv.conf")
}

// wantNameservers fails unless the namespace's resolv.conf names exactly
// these servers, in this order.
func wantNameservers(t *testing.T, ns *netnstest.NS, when string, servers ...string) {
	t.Helper()
	conf := resolvConf(t, ns)
	var got []string
	for _, l := range strings.Split(conf, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "nameserver "); ok {
			got = append(got, strings.TrimSpace(s))
		}
	}
	if strings.Join(got, " ") != strings.Join(servers, " ") {
		t.Errorf("%s: resolv.conf names %v, want %v:\n%s", when, got, servers, conf)
	}
}

// TestDNSEtcResolvConfTwoTunnels: two tunnels with
// --dns-control etc-resolv-conf, started A, B and stopped A, B, must
// leave the namespace's resolv.conf as it was, and while one runs it
// names that one's server.
func TestDNSEtcResolvConfTwoTunnels(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	guardHostResolvConf(t)
	ns := netnstest.New(t)
	ns.WriteEtc(t, "resolv.conf", origResolvConf)
	a, z := newNode(t, ns, netip.Addr{}, 1), newNode(t, ns, netip.Addr{}, 2)
	// B on another port and other addresses, so A's stop leaves B's alone.
	z.port = 51821
	z.inner = [2]netip.Prefix{netip.MustParsePrefix("10.102.0.2/24"), netip.MustParsePrefix("fd12::2/64")}
	a.writeDNSConfig(t, []string{"10.100.0.53"})
	z.writeDNSConfig(t, []string{"10.100.1.53"})
	state := t.TempDir()

	pa := a.startIn(t, b, state, "--dns-control", "etc-resolv-conf")
	wantNameservers(t, ns, "A up", "10.100.0.53")
	pz := z.startIn(t, b, state, "--dns-control", "etc-resolv-conf")
	if conf := resolvConf(t, ns); !strings.Contains(conf, "nameserver 10.100.1.53") {
		t.Errorf("A and B up: B's server missing:\n%s", conf)
	}
	stopAndCheck(t, pa, a)
	wantNameservers(t, ns, "A stopped, B up", "10.100.1.53")
	stopAndCheck(t, pz, z)
	if conf := resolvConf(t, ns); conf != origResolvConf {
		t.Errorf("both stopped: resolv.conf is\n%s\nwant the original\n%s", conf, origResolvConf)
	}
}

// TestDNSRecoversAfterKill: a tunnel
// killed with SIGKILL leaves its resolv.conf; the next start of that
// interface, even without --dns-control, puts the original back.
func TestDNSRecoversAfterKill(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	guardHostResolvConf(t)
	ns := netnstest.New(t)
	ns.WriteEtc(t, "resolv.conf", origResolvConf)
	a := newNode(t, ns, netip.Addr{}, 1)
	a.writeDNSConfig(t, []string{"10.100.0.53"}, "corp.example")
	state := t.TempDir()

	p := a.startIn(t, b, state, "--dns-control", "etc-resolv-conf")
	wantNameservers(t, ns, "up", "10.100.0.53")
	p.stop(t, syscall.SIGKILL, 5*time.Second)
	wantNameservers(t, ns, "after SIGKILL (nothing could restore it)", "10.100.0.53")

	p = a.startIn(t, b, state, "--dns-control", "disabled")
	if conf := resolvConf(t, ns); conf != origResolvConf {
		t.Errorf("restarted without DNS control: resolv.conf is\n%s\nwant the original\n%s", conf, origResolvConf)
	}
	stopAndCheck(t, p, a)
	if conf := resolvConf(t, ns); conf != origResolvConf {
		t.Errorf("stopped: resolv.conf is\n%s\nwant the original", conf)
	}
}

// TestDNSResolvconfOpenresolv: resolvconf mode, with the real openresolv
// confined to the namespace's own /etc: the namespace's resolver shows the tunnel's DNS while it runs and the
// old one after stop; after a SIGKILL the next start restores it (a
// start without DNS control: recovery does not depend on the mode).
func TestDNSResolvconfOpenresolv(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	guardHostResolvConf(t)
	ns := netnstest.New(t)
	or := resolvconftest.NewOpenresolv(t, ns, origResolvConf)
	a := newNode(t, ns, netip.Addr{}, 1)
	a.writeDNSConfig(t, []string{"10.100.0.53", "fd10::53"}, "corp.example")
	state := t.TempDir()

	p := a.startIn(t, b, state, "--dns-control", "resolvconf")
	up := or.ResolvConf(t)
	wantNameservers(t, ns, "up", "10.100.0.53", "fd10::53")
	if !strings.Contains(up, "search corp.example") {
		t.Errorf("up: no search line:\n%s", up)
	}
	t.Logf("resolv.conf while up:\n%s", up)
	stopAndCheck(t, p, a)
	if conf := or.ResolvConf(t); conf != origResolvConf {
		t.Errorf("after stop: resolv.conf\n%s\nwant the old one\n%s", conf, origResolvConf)
	}

	p = a.startIn(t, b, state, "--dns-control", "resolvconf")
	wantNameservers(t, ns, "up again", "10.100.0.53", "fd10::53")
	p.stop(t, syscall.SIGKILL, 5*time.Second)
	wantNameservers(t, ns, "after SIGKILL (nothing could restore it)", "10.100.0.53", "fd10::53")
	p = a.startIn(t, b, state, "--dns-control", "disabled")
	if conf := or.ResolvConf(t); conf != origResolvConf {
		t.Errorf("next start: resolv.conf\n%s\nwant the old one\n%s", conf, origResolvConf)
	}
	if !strings.Contains(p.out.String(), "undid what an earlier run left") {
		t.Errorf("the next start does not log the recovery:\n%s", p.out)
	}
	stopAndCheck(t, p, a)
	if got := or.Interfaces(t); got != "" {
		t.Errorf("openresolv still holds %q", got)
	}
}

// TestDNSSystemdResolvedFake runs the client against a fake resolved on
// a private bus (a live resolved cannot run here): auto picks it, says
// why, and the client makes exactly resolved's calls for its link, and
// RevertLink at stop.
func TestDNSSystemdResolvedFake(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	fake := resolvedtest.Start(t)
	ns := netnstest.New(t)
	a := newNode(t, ns, netip.Addr{}, 1)
	a.writeDNSConfig(t, []string{"10.100.0.53", "fd10::53"}, "corp.example")
	p := a.startWith(t, b, t.TempDir(), []string{fake.Env()})
	if !strings.Contains(p.out.String(), "systemd-resolved is running") {
		t.Errorf("the log does not say why systemd-resolved was chosen:\n%s", p.out)
	}
	link := ns.MustRun(t, "ip", "-o", "link", "show", a.iface)
	idx, _, _ := strings.Cut(link, ":")
	want := []string{
		"SetLinkDNS ia(iay) " + idx + " [(2 10.100.0.53) (10 fd10::53)]",
		"SetLinkDomains ia(sb) " + idx + " [(corp.example false)]",
	}
	if got := fake.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls while up:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	stopAndCheck(t, p, a)
	if got := fake.Calls(); len(got) != 3 || got[2] != "RevertLink i "+idx {
		t.Errorf("calls after stop: %q, want RevertLink i %s last", got, idx)
	}
}
