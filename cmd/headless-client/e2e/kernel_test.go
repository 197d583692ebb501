package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pipeguard/noise"
)

// What `wg` users see the kernel do, checked as the kernel's selftest
// (tools/testing/selftests/wireguard/netns.sh) checks it: the transfer
// counters, the clamped private key, and peers with low-order keys.

// textFile writes a key (or any text) to a file for `wg set … private-key`.
func textFile(t *testing.T, s string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wgPeerUp configures the empty tunnel of n with wg alone: its key and
// port, and peer as its one peer, at peer's veth address.
func wgPeerUp(t *testing.T, n, peer *node) {
	t.Helper()
	wg(t, "set", n.iface, "private-key", textFile(t, n.key.String()), "listen-port", fmt.Sprint(n.port),
		"peer", peer.key.Public().String(), "endpoint", fmt.Sprintf("%s:%d", peer.outer, peer.port),
		"allowed-ips", peer.inner[0].Addr().String()+"/32,"+peer.inner[1].Addr().String()+"/128")
}

// transferOf is `wg show IFACE transfer` of a tunnel with one peer.
func transferOf(t *testing.T, n *node) (rx, tx uint64) {
	t.Helper()
	var pub string
	out := wgShow(t, n, "transfer")
	if _, err := fmt.Sscan(out, &pub, &rx, &tx); err != nil {
		t.Fatalf("wg show %s transfer: %q: %v", n.iface, out, err)
	}
	return rx, tx
}

// TestWGShowTransferLikeKernel is the selftest's count: two PipeGuard
// tunnels configured by wg alone, one handshake and 10 flood pings of
// 84-byte packets. The side that pings (and so initiates) has received
// a 92-byte response and ten 128-byte replies, 1372 bytes, and sent a
// 148-byte initiation and ten 128-byte requests, 1428 bytes, or 1460 if
// a 32-byte keepalive went out too; the other side shows the mirror
// image.
func TestWGShowTransferLikeKernel(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	pa, pz := startEmptyTunnel(t, b, a), startEmptyTunnel(t, b, z)
	wgPeerUp(t, a, z)
	wgPeerUp(t, z, a)
	if out, err := a.ns.Run("ping", "-c", "10", "-f", "-W", "5", z.inner[0].Addr().String()); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	// Read at once, as the selftest does: a's passive keepalive is due
	// only 10 s after z's last reply.
	aRx, aTx := transferOf(t, a)
	zRx, zTx := transferOf(t, z)
	t.Logf("pinging side rx=%d tx=%d, other side rx=%d tx=%d", aRx, aTx, zRx, zTx)
	if aRx != 1372 || (aTx != 1428 && aTx != 1460) {
		t.Errorf("pinging side: rx=%d tx=%d, want rx=1372 tx=1428 or 1460", aRx, aTx)
	}
	if zTx != 1372 || zRx != aTx {
		t.Errorf("other side: rx=%d tx=%d, want rx=%d (what the pinging side sent) tx=1372", zRx, zTx, aTx)
	}
	stopAndCheck(t, pa, a)
	stopAndCheck(t, pz, z)
}

// TestWGShowClampedPrivateKey: a private key set unclamped, with wg set
// or in a config file, is shown clamped by `wg show private-key` and
// `wg showconf`, as the kernel and wireguard-go show it. The selftest's
// way: a genkey key with its first character made '/' (the low three
// bits of its first byte set) comes back with '+' there.
func TestWGShowClampedPrivateKey(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	pa := startEmptyTunnel(t, b, a)
	key := a.key.String()
	wg(t, "set", a.iface, "private-key", textFile(t, "/"+key[1:]))
	if got, want := strings.TrimSpace(wgShow(t, a, "private-key")), "+"+key[1:]; got != want {
		t.Errorf("wg show private-key = %q, want %q", got, want)
	}
	if conf := wg(t, "showconf", a.iface); !strings.Contains(conf, "PrivateKey = +"+key[1:]) {
		t.Errorf("wg showconf does not show the clamped key:\n%s", conf)
	}
	// '/' also sets bits 3 to 7 of that byte: another key, whose public
	// key is that of its clamped form.
	want, err := noise.ParsePrivateKey("+" + key[1:])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(wgShow(t, a, "public-key")); got != want.Public().String() {
		t.Errorf("public key %q, want %q", got, want.Public())
	}
	stopAndCheck(t, pa, a)

	// From a config file: the same.
	unclamped := z.key
	unclamped[0] |= 7
	unclamped[31] = (unclamped[31] | 0x80) &^ 0x40
	clamped := z.key
	z.key = unclamped
	z.writeConfig(t)
	pz := z.startClient(t, b)
	if got := strings.TrimSpace(wgShow(t, z, "private-key")); got != clamped.String() {
		t.Errorf("standalone with an unclamped key in its file: wg show private-key = %q, want %q", got, clamped)
	}
	stopAndCheck(t, pz, z)
}

// lowOrderKeys are the low-order points the selftest sets as peers.
var lowOrderKeys = []string{
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	"4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
	"X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
	"7P///////////////////////////////////////38=",
	"7f///////////////////////////////////////38=",
	"7v///////////////////////////////////////38=",
}

// TestWGSetLowOrderPeers is the selftest's "low-order points": `wg set`
// takes each low-order point as a peer with an endpoint and a
// persistent keepalive of 1 s, as the kernel does, and in the 2 s after
// the link comes up nothing reaches that endpoint: no handshake is
// attempted. The client logs one warning per peer, naming it.
func TestWGSetLowOrderPeers(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a := loneNode(t)
	p := startEmptyTunnel(t, b, a)
	// Down again: the selftest adds the peers to a link that is down.
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "down")
	wg(t, "set", a.iface, "private-key", textFile(t, a.key.String()))
	for _, k := range lowOrderKeys {
		wg(t, "set", a.iface, "peer", k, "persistent-keepalive", "1", "endpoint", "127.0.0.1:1111")
	}
	if peers := strings.Fields(wgShow(t, a, "peers")); len(peers) != len(lowOrderKeys) {
		t.Fatalf("wg show peers: %d peers, want %d", len(peers), len(lowOrderKeys))
	}
	var conn net.PacketConn
	if err := a.ns.Do(func() (err error) { conn, err = net.ListenPacket("udp4", "127.0.0.1:1111"); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "up")
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFrom(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the low-order peers' endpoint got %d bytes from %v (err %v): a handshake was attempted", n, from, err)
	}
	waitFor(t, func() bool { return strings.Count(p.out.String(), "low-order public key") == len(lowOrderKeys) })
	for _, k := range lowOrderKeys {
		if !strings.Contains(p.out.String(), k) {
			t.Errorf("no log line names %s", k)
		}
	}
	// A key from genkey is still what it was: a peer like any other.
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	wg(t, "set", a.iface, "peer", k.Public().String())
	if n := strings.Count(p.out.String(), "low-order public key"); n != len(lowOrderKeys) {
		t.Errorf("%d low-order warnings after an ordinary peer was added, want %d", n, len(lowOrderKeys))
	}
	stopAndCheck(t, p, a)
}
