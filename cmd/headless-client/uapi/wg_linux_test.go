package uapi

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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
	// A refused change makes wg fail.
	if out, err := exec.Command(wg, "set", name, "listen-port", "1").CombinedOutput(); err == nil {
		t.Errorf("wg set listen-port succeeded: %s", out)
	}
}
