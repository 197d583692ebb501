package uapi

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
)

// wgBinary returns Debian's wg(8), or skips (fails in CI) without it or
// without root, which the socket directory needs.
func wgBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("wg")
	if err == nil && os.Geteuid() == 0 {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: needs root and wg (wireguard-tools): euid %d, %v", os.Geteuid(), err)
	}
	t.Skip("needs root and wg (wireguard-tools)")
	return ""
}

// TestWGTool drives the server with the real wg(8): show, set, dump.
// The socket goes where wg looks, under a name unique to this process.
func TestWGTool(t *testing.T) {
	wg := wgBinary(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(wg, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("wg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	peerKey := key(t).Public()
	tun, priv := newTunnel(t, stages.PeerConfig{
		PublicKey:  peerKey,
		Endpoint:   netip.MustParseAddrPort("192.0.2.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	})
	name := fmt.Sprintf("pgu%d", os.Getpid()%1000000)
	srv, err := Listen(SocketPath(name), tun, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if _, err := os.Stat(SocketPath(name)); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
	})

	show := run("show", name)
	for _, want := range []string{"interface: " + name, "public key: " + priv.Public().String(), "listening port: 51820",
		"peer: " + peerKey.String(), "endpoint: 192.0.2.2:51820", "allowed ips: 10.0.0.2/32"} {
		if !strings.Contains(show, want) {
			t.Errorf("wg show lacks %q:\n%s", want, show)
		}
	}
	if got := strings.TrimSpace(run("show", "interfaces")); !strings.Contains(" "+got+" ", " "+name+" ") {
		t.Errorf("wg show interfaces = %q, lacks %s", got, name)
	}

	// wg set: add a peer with a pre-shared key, change the first one.
	added := key(t).Public()
	pskFile := t.TempDir() + "/psk"
	psk := noise.PresharedKey{9, 9}
	os.WriteFile(pskFile, []byte(psk.String()+"\n"), 0o600)
	run("set", name, "peer", added.String(), "preshared-key", pskFile, "endpoint", "[2001:db8::5]:4242",
		"persistent-keepalive", "15", "allowed-ips", "10.0.0.3/32,fd00::3/128")
	run("set", name, "peer", peerKey.String(), "allowed-ips", "10.0.0.2/32,10.0.1.0/24")
	st, ok := tun.Peer(added)
	if !ok || !st.PresharedKey.Equal(psk) || st.Endpoint.String() != "[2001:db8::5]:4242" || st.PersistentKeepalive != 15*time.Second || len(st.AllowedIPs) != 2 {
		t.Errorf("added peer: %v %+v", ok, st)
	}
	if st, _ := tun.Peer(peerKey); len(st.AllowedIPs) != 2 {
		t.Errorf("changed peer allowed IPs %v", st.AllowedIPs)
	}
	// wg show dump: one line per peer, tab-separated, as scripts read it.
	dump := strings.Split(strings.TrimSpace(run("show", name, "dump")), "\n")
	if len(dump) != 3 || !strings.HasPrefix(dump[0], priv.String()+"\t"+priv.Public().String()+"\t51820") {
		t.Errorf("dump:\n%s", strings.Join(dump, "\n"))
	}
	run("set", name, "peer", added.String(), "remove")
	if _, ok := tun.Peer(added); ok {
		t.Error("wg set remove left the peer")
	}
	// A change this tunnel's socket cannot make (it is not rebindable)
	// makes wg fail with "Operation not supported".
	if out, err := exec.Command(wg, "set", name, "listen-port", "1").CombinedOutput(); err == nil || !strings.Contains(string(out), "not supported") {
		t.Errorf("wg set listen-port on a fixed socket: %v\n%s", err, out)
	}
}

// serveWG serves dev's UAPI where wg looks, under a name unique to this
// process and test, until the test ends, and returns the name and a
// function that runs wg with arguments and returns its output.
func serveWG(t *testing.T, dev Device, suffix string) (string, func(args ...string) (string, error)) {
	t.Helper()
	wg := wgBinary(t)
	name := fmt.Sprintf("pgu%d%s", os.Getpid()%1000000, suffix)
	srv, err := Listen(SocketPath(name), dev, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return name, func(args ...string) (string, error) {
		out, err := exec.Command(wg, args...).CombinedOutput()
		return string(out), err
	}
}

// writeConf writes an ordinary wg(8) config file (mode 0600) and returns
// its path.
func writeConf(t *testing.T, name, body string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWGSetconf: an empty tunnel (no key, no peers, as the tunnel mode
// starts) configured by wg setconf, addconf and syncconf with ordinary
// config files, then wg set for the key, port and mark, as the real
// wg(8) drives wireguard-go. Everything lands; wg showconf and wg show
// read it back; a taken port is refused with "Address already in use"
// and changes nothing.
func TestWGSetconf(t *testing.T) {
	r := newEmptyRig(t)
	name, wg := serveWG(t, r.tun, "c")
	must := func(args ...string) string {
		t.Helper()
		out, err := wg(args...)
		if err != nil {
			t.Fatalf("wg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	priv, a, b, c, d := key(t), key(t), key(t), key(t), key(t)
	psk := noise.PresharedKey{1, 2, 3}
	setconf := writeConf(t, "set.conf", fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = 51830
FwMark = 0x1234

[Peer]
PublicKey = %s
PresharedKey = %s
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.0.0.2/32, fd00::2/128
PersistentKeepalive = 25

[Peer]
PublicKey = %s
AllowedIPs = 10.0.0.3/32
`, priv, a.Public(), psk, b.Public()))
	must("setconf", name, setconf)
	if !r.tun.PrivateKey().Equal(priv) || r.tun.LocalAddr().Port() != 51830 || r.tun.FwMark() != 0x1234 {
		t.Fatalf("setconf: key %v, %v, mark %#x", r.tun.PrivateKey().Equal(priv), r.tun.LocalAddr(), r.tun.FwMark())
	}
	st, ok := r.tun.Peer(a.Public())
	if !ok || !st.PresharedKey.Equal(psk) || st.Endpoint.String() != "192.0.2.2:51820" || st.PersistentKeepalive != 25*time.Second ||
		!slices.Equal(st.AllowedIPs, prefixes("10.0.0.2/32", "fd00::2/128")) {
		t.Fatalf("peer A after setconf: %v %+v", ok, st)
	}
	if n := len(r.tun.Peers()); n != 2 {
		t.Fatalf("%d peers after setconf", n)
	}
	showconf := must("showconf", name)
	for _, want := range []string{"PrivateKey = " + priv.String(), "ListenPort = 51830", "FwMark = 0x1234",
		"PublicKey = " + a.Public().String(), "PresharedKey = " + psk.String(), "AllowedIPs = 10.0.0.2/32, fd00::2/128",
		"Endpoint = 192.0.2.2:51820", "PersistentKeepalive = 25", "PublicKey = " + b.Public().String()} {
		if !strings.Contains(showconf, want) {
			t.Errorf("wg showconf lacks %q:\n%s", want, showconf)
		}
	}
	if got := strings.TrimSpace(must("show", name, "fwmark")); got != "0x1234" {
		t.Errorf("wg show fwmark = %q", got)
	}

	// addconf: a new peer; and A, listed again, gets the file's allowed
	// IPs (wg sends replace_allowed_ips for every peer of a file) and
	// keeps the rest of its settings.
	must("addconf", name, writeConf(t, "add.conf", fmt.Sprintf(`[Peer]
PublicKey = %s
AllowedIPs = 10.0.0.4/32

[Peer]
PublicKey = %s
AllowedIPs = 10.1.0.0/16
`, c.Public(), a.Public())))
	if st, _ := r.tun.Peer(a.Public()); !slices.Equal(st.AllowedIPs, prefixes("10.1.0.0/16")) || st.Endpoint.String() != "192.0.2.2:51820" {
		t.Errorf("A after addconf: %+v", st)
	}
	if _, ok := r.tun.Peer(c.Public()); !ok || len(r.tun.Peers()) != 3 {
		t.Errorf("addconf: C %v, %d peers", ok, len(r.tun.Peers()))
	}

	// syncconf: the peers become the file's: B and C go, D comes, A
	// changes its endpoint and allowed IPs; the key stays.
	must("syncconf", name, writeConf(t, "sync.conf", fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = 51830
FwMark = 0x1234

[Peer]
PublicKey = %s
PresharedKey = %s
Endpoint = 192.0.2.7:51820
AllowedIPs = 10.0.0.2/32
PersistentKeepalive = 25

[Peer]
PublicKey = %s
AllowedIPs = 10.0.0.5/32
`, priv, a.Public(), psk, d.Public())))
	keys := r.peerKeys()
	slices.SortFunc(keys, func(x, y noise.PublicKey) int { return strings.Compare(x.String(), y.String()) })
	want := []noise.PublicKey{a.Public(), d.Public()}
	slices.SortFunc(want, func(x, y noise.PublicKey) int { return strings.Compare(x.String(), y.String()) })
	if !slices.Equal(keys, want) {
		t.Errorf("peers after syncconf: %v, want A and D", keys)
	}
	if st, _ := r.tun.Peer(a.Public()); st.Endpoint.String() != "192.0.2.7:51820" || !slices.Equal(st.AllowedIPs, prefixes("10.0.0.2/32")) {
		t.Errorf("A after syncconf: %+v", st)
	}

	// wg set: key and port at once, then the mark off.
	next := key(t)
	keyFile := writeConf(t, "key", next.String()+"\n")
	must("set", name, "private-key", keyFile, "listen-port", "51840")
	if !r.tun.PrivateKey().Equal(next) || r.tun.LocalAddr().Port() != 51840 || r.tun.FwMark() != 0x1234 {
		t.Errorf("wg set private-key listen-port: key %v, %v, mark %#x", r.tun.PrivateKey().Equal(next), r.tun.LocalAddr(), r.tun.FwMark())
	}
	if got := strings.TrimSpace(must("show", name, "public-key")); got != next.Public().String() {
		t.Errorf("wg show public-key = %q", got)
	}
	must("set", name, "fwmark", "0")
	if got := strings.TrimSpace(must("show", name, "fwmark")); got != "off" || r.tun.FwMark() != 0 {
		t.Errorf("after fwmark 0: wg show fwmark = %q, mark %d", got, r.tun.FwMark())
	}

	// A taken port: refused with EADDRINUSE; the key in the same command
	// is not applied either.
	was := string(AppendGet(nil, r.tun))
	out, err := wg("set", name, "private-key", writeConf(t, "key2", key(t).String()+"\n"), "listen-port", "51999")
	if err == nil || !strings.Contains(out, "Address already in use") {
		t.Errorf("wg set to a taken port: %v\n%s", err, out)
	}
	if now := string(AppendGet(nil, r.tun)); now != was {
		t.Errorf("the refused wg set changed the tunnel:\n%s\n---\n%s", was, now)
	}
}
