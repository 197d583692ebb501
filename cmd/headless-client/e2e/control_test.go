package e2e

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/internal/tcpcheck"
	"pipeguard/noise"
)

// TestWGSetAddsPeer starts a client with no peers and adds one with
// Debian's `wg set`; traffic to it must then flow.
func TestWGSetAddsPeer(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	a.writeConfig(t)
	z.writeConfig(t, a.asPeer(true))
	pa := a.startClient(t, b)
	pz := z.startClient(t, b)
	if peers := strings.TrimSpace(wg(t, "show", a.iface, "peers")); peers != "" {
		t.Fatalf("peers before wg set: %q", peers)
	}
	// 10.100.0.2 is in the /24 of a's address, so no new route is needed,
	// as with kernel WireGuard.
	wg(t, "set", a.iface, "peer", z.key.Public().String(), "endpoint", netip.AddrPortFrom(z.outer, z.port).String(),
		"allowed-ips", z.inner[0].Addr().String()+"/32,"+z.inner[1].Addr().String()+"/128")
	if peers := strings.TrimSpace(wg(t, "show", a.iface, "peers")); peers != z.key.Public().String() {
		t.Fatalf("peers after wg set: %q", peers)
	}
	a.ping(t, z.inner[0].Addr())
	z.ping(t, a.inner[1].Addr())
	transfer(t, a, z, 5<<20, nil)
	// And wg set removes it again: traffic stops.
	wg(t, "set", a.iface, "peer", z.key.Public().String(), "remove")
	if out, err := a.ns.Run("ping", "-c", "1", "-W", "1", z.inner[0].Addr().String()); err == nil {
		t.Errorf("ping still works after wg set remove:\n%s", out)
	}
	stopAndCheck(t, pa, a)
	stopAndCheck(t, pz, z)
}

// paced slows a connection's writes, so that a transfer lasts long enough
// to span a reload.
type paced struct {
	net.Conn
	delay time.Duration
}

func (p paced) Write(b []byte) (int, error) {
	time.Sleep(p.delay)
	return p.Conn.Write(b)
}

func (p paced) CloseWrite() error { return p.Conn.(*net.TCPConn).CloseWrite() }

// TestSIGHUPReload changes the peers under a running transfer: a peer is
// added (with a route outside the interface's subnet), one removed, and
// the transfer to the unchanged peer completes intact on the same session.
func TestSIGHUPReload(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	key := func() noise.PublicKey {
		k, err := noise.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	gone := config.Peer{PublicKey: key(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.100.0.3/32")}}
	added := config.Peer{PublicKey: key(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/24")}}
	a.writeConfig(t, z.asPeer(true), gone)
	z.writeConfig(t, a.asPeer(true))
	logDir := t.TempDir()
	pa := a.startClient(t, b, "--log-dir", logDir)
	pz := z.startClient(t, b)
	a.ping(t, z.inner[0].Addr())
	before := handshakeOf(t, a, z)
	if routes := a.ns.MustRun(t, "ip", "route"); !strings.Contains(routes, "10.100.0.3 dev "+a.iface) {
		t.Fatalf("no route for the peer to be removed:\n%s", routes)
	}

	var bg sync.WaitGroup
	var res tcpcheck.Result
	var terr error
	bg.Go(func() {
		// 10 MB in 64 KiB writes 10 ms apart: about 1.6 s.
		res, terr = tryTransfer(t, a, z, 10<<20, func(c net.Conn) net.Conn { return paced{c, 10 * time.Millisecond} })
	})
	time.Sleep(400 * time.Millisecond)
	a.writeConfig(t, z.asPeer(true), added)
	if err := pa.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	bg.Wait()
	if terr != nil {
		t.Fatalf("transfer across the reload: %v", terr)
	}
	if res.Duration < 600*time.Millisecond {
		t.Fatalf("transfer took %v: it did not span the reload", res.Duration)
	}
	if !strings.Contains(pa.out.String(), "config reloaded") {
		t.Fatalf("client did not log the reload:\n%s", pa.out)
	}
	peers := strings.Fields(wgShow(t, a, "peers"))
	if len(peers) != 2 || !contains(peers, z.key.Public().String()) || !contains(peers, added.PublicKey.String()) {
		t.Errorf("peers after reload %v, want %s and %s", peers, z.key.Public(), added.PublicKey)
	}
	if after := handshakeOf(t, a, z); after != before {
		t.Errorf("latest handshake with the unchanged peer moved from %s to %s: its session was dropped", before, after)
	}
	routes := a.ns.MustRun(t, "ip", "route")
	if !strings.Contains(routes, "10.200.0.0/24 dev "+a.iface) || strings.Contains(routes, "10.100.0.3 dev") {
		t.Errorf("routes after reload (want 10.200.0.0/24, not 10.100.0.3):\n%s", routes)
	}
	checkJSONLog(t, filepath.Join(logDir, "pipeguard-"+a.iface+".log"), "config reloaded")
	if strings.Contains(pa.out.String(), "\x1b[") {
		t.Error("stderr is not a terminal, but the log has colour codes")
	}
	// A bad file on reload changes nothing and keeps the tunnel up.
	if err := os.WriteFile(a.conf, []byte("[Interface]\nBogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pa.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(pa.out.String(), "reload refused") })
	a.ping(t, z.inner[0].Addr())
	stopAndCheck(t, pa, a)
	stopAndCheck(t, pz, z)
}

// checkJSONLog checks that every line of the log file is a JSON object
// with time, level and msg, and that one has the message want.
func checkJSONLog(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("JSON log: %v", err)
	}
	found := false
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var rec struct{ Time, Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Time == "" || rec.Level == "" {
			t.Fatalf("log line %q is not a JSON record: %v", line, err)
		}
		found = found || rec.Msg == want
	}
	if !found {
		t.Errorf("no %q record in %s", want, path)
	}
}

func wgShow(t *testing.T, n *node, what string) string { return wg(t, "show", n.iface, what) }

// handshakeOf is n's latest handshake time with peer, as wg prints it.
func handshakeOf(t *testing.T, n, peer *node) string {
	t.Helper()
	for line := range strings.SplitSeq(wgShow(t, n, "latest-handshakes"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == peer.key.Public().String() {
			if f[1] == "0" {
				t.Fatalf("no handshake with %s yet", peer.iface)
			}
			return f[1]
		}
	}
	t.Fatalf("peer %s not in wg show latest-handshakes", peer.key.Public())
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 2 s")
}
