package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/uapi"
)

// TestDebianWireguardGo: interop with the wireguard-go that Debian ships
// (package wireguard-go, an older release than the module cmd/wgpeer is
// built from), run as wg-quick runs a userspace implementation
// (`wireguard-go IFACE`, then `wg setconf`): a PipeGuard client and it
// ping each other over IPv4 and IPv6, each side initiating once, and move
// 50 MB of TCP each way, checksummed. `wg show` on PipeGuard's socket
// then reports the handshake and the traffic, and both stop cleanly.
func TestDebianWireguardGo(t *testing.T) {
	b := binaries(t)
	bin, err := exec.LookPath("wireguard-go")
	if err != nil {
		t.Fatal("wireguard-go (Debian's package) is needed; scripts/setup.sh installs it")
	}
	t.Parallel()
	a, z := newNodes(t)

	pz := startDebianWireguardGo(t, z, bin)
	wg(t, "setconf", z.iface, wgConf(t, fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = %d

[Peer]
PublicKey = %s
Endpoint = %s
AllowedIPs = %s/32, %s/128
`, z.key, z.port, a.key.Public(), netip.AddrPortFrom(a.outer, a.port), a.inner[0].Addr(), a.inner[1].Addr())))
	z.ns.MustRun(t, "ip", "address", "add", z.inner[0].String(), "dev", z.iface)
	z.ns.MustRun(t, "ip", "address", "add", z.inner[1].String(), "dev", z.iface, "nodad")
	z.ns.MustRun(t, "ip", "link", "set", z.iface, "mtu", "1280", "up")

	a.writeConfig(t, z.asPeer(true))
	pa := a.startClient(t, b)

	z.ping(t, a.inner[0].Addr()) // wireguard-go initiates
	trafficBothWays(t, a, z)

	show := wg(t, "show", a.iface, "dump")
	var peerLine []string
	for _, line := range strings.Split(strings.TrimSpace(show), "\n")[1:] {
		if f := strings.Split(line, "\t"); len(f) >= 7 && f[0] == z.key.Public().String() {
			peerLine = f
		}
	}
	if peerLine == nil {
		t.Fatalf("wg show %s dump has no peer %s:\n%s", a.iface, z.key.Public(), show)
	}
	if peerLine[4] == "0" {
		t.Errorf("wg show dump: no handshake with wireguard-go: %q", peerLine)
	}
	for i, what := range []string{"received", "sent"} {
		if n, err := strconv.ParseInt(peerLine[5+i], 10, 64); err != nil || n < bulk {
			t.Errorf("wg show dump: %s %q bytes, want at least %d", what, peerLine[5+i], bulk)
		}
	}

	// PipeGuard re-initiates after the session is dropped on its side:
	// restart it, and it must reach wireguard-go again (it initiates now).
	stopAndCheck(t, pa, a)
	pa = a.startClient(t, b)
	a.ping(t, z.inner[1].Addr())
	stopAndCheck(t, pa, a)

	// wireguard-go stops when its interface goes, as wg-quick down does it.
	z.ns.MustRun(t, "ip", "link", "del", z.iface)
	select {
	case err := <-pz.exit:
		pz.exit <- err
	case <-time.After(3 * time.Second):
		t.Errorf("wireguard-go still runs 3 s after its interface was deleted")
	}
}

// startDebianWireguardGo runs Debian's wireguard-go for n in the
// foreground and waits until its UAPI socket answers.
func startDebianWireguardGo(t *testing.T, n *node, bin string) *proc {
	t.Helper()
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := start(t, n.ns, "wireguard-go "+n.iface, bin, []string{"LOG_LEVEL=debug"}, "-f", n.iface)
	p.waitSocket(t, n.iface)
	return p
}
