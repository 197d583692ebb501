package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/noise"
)

// startEmptyTunnel starts PipeGuard for n as an interface that wg
// configures: `tunnel --foreground IFACE`, which has no key, no port of
// its own that matters, no peers, no addresses and its link down; then,
// as wg-quick would, n's addresses and the link up.
func startEmptyTunnel(t *testing.T, b bins, n *node) *proc {
	t.Helper()
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := start(t, n.ns, "tunnel "+n.iface, b.client, []string{"PIPEGUARD_ID=e2e-" + n.iface},
		"--log-level", "debug", "tunnel", "--foreground", "--state-dir", t.TempDir(), n.iface)
	p.waitSocket(t, n.iface)
	n.ns.MustRun(t, "ip", "address", "add", n.inner[0].String(), "dev", n.iface)
	n.ns.MustRun(t, "ip", "address", "add", n.inner[1].String(), "dev", n.iface, "nodad")
	n.ns.MustRun(t, "ip", "link", "set", n.iface, "up")
	return p
}

// wgConf writes an ordinary wg(8) config file (not wg-quick's: no
// Address) and returns its path.
func wgConf(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wg.conf")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// udpPorts lists the UDP ports listening in ns.
func udpPorts(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	return ns.MustRun(t, "ss", "-Hunl")
}

// TestWGSetconfAndKeyChange: a PipeGuard tunnel configured by wg setconf
// alone (private key, listen port, fwmark, peer) passes traffic with a
// wireguard-go peer; after `wg set IFACE private-key NEW listen-port
// NEWPORT`, and the peer being told the new public key and endpoint,
// traffic resumes, on the new port, with the mark kept.
func TestWGSetconfAndKeyChange(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	pa := startEmptyTunnel(t, b, a)
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)

	wg(t, "setconf", a.iface, wgConf(t, fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = %d
FwMark = 0x5678

[Peer]
PublicKey = %s
Endpoint = %s
AllowedIPs = %s/32, %s/128
`, a.key, a.port, z.key.Public(), netip.AddrPortFrom(z.outer, z.port), z.inner[0].Addr(), z.inner[1].Addr())))
	if got := strings.TrimSpace(wg(t, "show", a.iface, "fwmark")); got != "0x5678" {
		t.Errorf("wg show fwmark = %q", got)
	}
	if got := strings.TrimSpace(wg(t, "show", a.iface, "public-key")); got != a.key.Public().String() {
		t.Errorf("wg show public-key = %q", got)
	}
	if ports := udpPorts(t, a.ns); !strings.Contains(ports, fmt.Sprintf(":%d ", a.port)) {
		t.Errorf("not listening on %d:\n%s", a.port, ports)
	}
	a.ping(t, z.inner[0].Addr())
	z.ping(t, a.inner[1].Addr())
	transfer(t, a, z, 5<<20, nil)

	// New key and port at once, with wg set; the peer is told.
	oldPub := a.key.Public()
	next, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := wgConf(t, next.String()+"\n")
	a.key, a.port = next, a.port+1
	wg(t, "set", a.iface, "private-key", keyFile, "listen-port", fmt.Sprint(a.port))
	if got := strings.TrimSpace(wg(t, "show", a.iface, "public-key")); got != next.Public().String() {
		t.Errorf("after wg set: public key %q", got)
	}
	if got := strings.TrimSpace(wg(t, "show", a.iface, "listen-port")); got != fmt.Sprint(a.port) {
		t.Errorf("after wg set: listen port %q", got)
	}
	if got := strings.TrimSpace(wg(t, "show", a.iface, "fwmark")); got != "0x5678" {
		t.Errorf("after wg set: fwmark %q", got)
	}
	if ports := udpPorts(t, a.ns); !strings.Contains(ports, fmt.Sprintf(":%d ", a.port)) || strings.Contains(ports, fmt.Sprintf(":%d ", a.port-1)) {
		t.Errorf("after wg set listen-port %d, sockets:\n%s", a.port, ports)
	}
	wg(t, "set", z.iface, "peer", oldPub.String(), "remove",
		"peer", next.Public().String(), "endpoint", netip.AddrPortFrom(a.outer, a.port).String(),
		"allowed-ips", a.inner[0].Addr().String()+"/32,"+a.inner[1].Addr().String()+"/128")
	// The far side speaks first this time: it initiates to the new key.
	z.ping(t, a.inner[0].Addr())
	a.ping(t, z.inner[1].Addr())
	transfer(t, z, a, 5<<20, nil)
	stopAndCheck(t, pa, a)
}

// TestSIGHUPKeyAndPort: a reload applies a new private key and listen
// port from the file, as wg set does; once the peer's file names the new
// key and endpoint and it reloads too, traffic resumes.
func TestSIGHUPKeyAndPort(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	pa := a.startClient(t, b)
	pz := z.startClient(t, b)
	a.ping(t, z.inner[0].Addr())

	next, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	a.key, a.port = next, a.port+1
	a.writeConfig(t, z.asPeer(true))
	z.writeConfig(t, a.asPeer(true))
	for _, p := range []*proc{pa, pz} {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.TrimSpace(wg(t, "show", a.iface, "listen-port")) != fmt.Sprint(a.port) ||
		strings.TrimSpace(wg(t, "show", z.iface, "peers")) != next.Public().String() {
		if time.Now().After(deadline) {
			t.Fatalf("reloads not applied within 5 s:\n%s\n%s", wg(t, "show", a.iface), wg(t, "show", z.iface))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := strings.TrimSpace(wg(t, "show", a.iface, "public-key")); got != next.Public().String() {
		t.Errorf("after the reload: public key %q", got)
	}
	z.ping(t, a.inner[0].Addr())
	a.ping(t, z.inner[1].Addr())
	stopAndCheck(t, pa, a)
	stopAndCheck(t, pz, z)
}
