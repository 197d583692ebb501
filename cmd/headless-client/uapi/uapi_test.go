package uapi

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func key(t testing.TB) noise.PrivateKey {
	t.Helper()
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hexOf[K ~[32]byte](k K) string { return hex.EncodeToString(k[:]) }

// newTunnel is a real tunnel on in-memory devices, not started: the
// control API works without Serve.
func newTunnel(t testing.TB, peers ...stages.PeerConfig) (*stages.Tunnel, noise.PrivateKey) {
	t.Helper()
	conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	k := key(t)
	tun, err := stages.New(stages.Config{PrivateKey: k, Peers: peers}, dev, conn, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); conn.Close() })
	return tun, k
}

func parse(s string) (*SetRequest, error) {
	return ParseSet(bufio.NewReader(strings.NewReader(s)))
}

func TestParseSet(t *testing.T) {
	pk := key(t).Public()
	psk := noise.PresharedKey{7}
	req, err := parse("private_key=" + hexOf(key(t)) + "\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n" +
		"public_key=" + hexOf(pk) + "\npreshared_key=" + hexOf(psk) + "\nendpoint=[::ffff:192.0.2.7]:9\n" +
		"persistent_keepalive_interval=25\nallowed_ip=10.0.0.1/8\nreplace_allowed_ips=true\nallowed_ip=10.1.2.3/16\n" +
		"allowed_ip=-fd00::/8\nprotocol_version=1\n" +
		"public_key=" + hexOf(key(t).Public()) + "\nupdate_only=true\nremove=true\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if req.PrivateKey == nil || *req.ListenPort != 51820 || *req.FwMark != 0 || !req.ReplacePeers || len(req.Peers) != 2 {
		t.Fatalf("device part: %+v", req)
	}
	p := req.Peers[0]
	if p.PublicKey != pk || *p.PresharedKey != psk || p.Endpoint.String() != "192.0.2.7:9" || *p.PersistentKeepalive != 25*time.Second {
		t.Errorf("peer %+v", p)
	}
	// The allowed-IP lines in order, masked.
	if want := []AllowedIPOp{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8")},
		{ReplaceAll: true},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16")},
		{Remove: true, Prefix: netip.MustParsePrefix("fd00::/8")},
	}; !slices.Equal(p.AllowedIPs, want) {
		t.Errorf("allowed IPs: %+v, want %+v", p.AllowedIPs, want)
	}
	if q := req.Peers[1]; !q.UpdateOnly || !q.Remove {
		t.Errorf("second peer %+v", q)
	}
}

func TestParseSetErrors(t *testing.T) {
	pk := "public_key=" + hexOf(key(t).Public()) + "\n"
	for _, tc := range []struct {
		name, in string
		err      error
	}{
		{"no equals", "listen_port\n\n", ErrProtocol},
		{"long line", "allowed_ip=" + strings.Repeat("1", maxLine) + "\n\n", ErrProtocol},
		{"eof before blank", "listen_port=1\n", io.EOF},
		{"unknown device key", "mtu=1280\n\n", ErrInvalid},
		{"unknown peer key", pk + "mtu=1\n\n", ErrInvalid},
		{"short key", "public_key=abcd\n\n", ErrInvalid},
		{"base64 key", "private_key=2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY=\n\n", ErrInvalid},
		{"bad port", "listen_port=65536\n\n", ErrInvalid},
		{"bad fwmark", "fwmark=-1\n\n", ErrInvalid},
		{"replace_peers false", "replace_peers=false\n\n", ErrInvalid},
		{"remove false", pk + "remove=false\n\n", ErrInvalid},
		{"endpoint name", pk + "endpoint=example.com:1\n\n", ErrInvalid},
		{"endpoint port 0", pk + "endpoint=1.2.3.4:0\n\n", ErrInvalid},
		{"bad allowed ip", pk + "allowed_ip=10.0.0.0/40\n\n", ErrInvalid},
		{"bad keepalive", pk + "persistent_keepalive_interval=70000\n\n", ErrInvalid},
		{"protocol 2", pk + "protocol_version=2\n\n", ErrInvalid},
	} {
		if _, err := parse(tc.in); !errors.Is(err, tc.err) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestErrno(t *testing.T) {
	for err, want := range map[error]int64{nil: 0, ErrProtocol: -71, ErrInvalid: -22, ErrIO: -5, ErrSocket: -98, ErrUnsupported: -95} {
		if got := Errno(err); got != want {
			t.Errorf("Errno(%v) = %d, want %d", err, got, want)
		}
	}
}

// getMap parses a get answer into key → values.
func getMap(b []byte) map[string][]string {
	m := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = append(m[k], v)
	}
	return m
}

func TestAppendGet(t *testing.T) {
	pk := key(t).Public()
	tun, priv := newTunnel(t, stages.PeerConfig{
		PublicKey:           pk,
		PresharedKey:        noise.PresharedKey{3},
		Endpoint:            netip.MustParseAddrPort("[2001:db8::1]:51820"),
		AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")},
		PersistentKeepalive: 25 * time.Second,
	})
	m := getMap(AppendGet(nil, tun))
	for k, want := range map[string][]string{
		"private_key":                   {hexOf(priv)},
		"listen_port":                   {"51820"},
		"public_key":                    {hexOf(pk)},
		"preshared_key":                 {hexOf(noise.PresharedKey{3})},
		"protocol_version":              {"1"},
		"endpoint":                      {"[2001:db8::1]:51820"},
		"last_handshake_time_sec":       {"0"},
		"last_handshake_time_nsec":      {"0"},
		"tx_bytes":                      {"0"},
		"rx_bytes":                      {"0"},
		"persistent_keepalive_interval": {"25"},
		"allowed_ip":                    {"10.0.0.0/24", "fd00::/64"},
	} {
		if !slices.Equal(m[k], want) {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if len(m) != 12 {
		t.Errorf("%d keys in %v, want 12", len(m), m)
	}
}

func TestServerProtocol(t *testing.T) {
	tun, _ := newTunnel(t)
	path := t.TempDir() + "/t.sock"
	srv, err := Listen(path, tun, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	c := dial(t, path)
	pk := key(t).Public()
	// Two requests on one connection, as the protocol allows.
	io.WriteString(c, "set=1\npublic_key="+hexOf(pk)+"\nallowed_ip=10.1.0.0/16\n\nget=1\n\n")
	r := bufio.NewReader(c)
	if got := readAnswer(t, r); got != "errno=0\n" {
		t.Fatalf("set answer %q", got)
	}
	if got := readAnswer(t, r); !strings.Contains(got, "public_key="+hexOf(pk)+"\n") || !strings.Contains(got, "allowed_ip=10.1.0.0/16\n") || !strings.HasSuffix(got, "errno=0\n") {
		t.Fatalf("get answer %q", got)
	}
	io.WriteString(c, "set=1\nbogus=1\n\n")
	if got := readAnswer(t, r); got != "errno=-22\n" {
		t.Fatalf("bad set answer %q", got)
	}
	// A second server on the same live socket is refused.
	if _, err := Listen(path, tun, nil, quiet()); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return within 2 s with a client connected")
	}
	if _, err := Listen(path, tun, nil, quiet()); err != nil {
		t.Fatalf("socket not reusable after stop: %v", err)
	}
}

// readAnswer reads up to and including the blank line after errno.
func readAnswer(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading answer: %v (so far %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

// TestAppendGetNoKey: a tunnel without a private key reports none, as
// wireguard-go does (wg show then prints no public key).
func TestAppendGetNoKey(t *testing.T) {
	conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); conn.Close() })
	tun, err := stages.New(stages.Config{}, dev, conn, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if m := getMap(AppendGet(nil, tun)); m["private_key"] != nil || !slices.Equal(m["listen_port"], []string{"51820"}) {
		t.Errorf("get of a tunnel without a key: %v", m)
	}
}

// TestParseSetErrorsHideKeys: the server logs a refused set's error, so
// a mistyped line that holds a private or preshared key must not reach
// the log: the error names the key field at most, never its digits.
func TestParseSetErrorsHideKeys(t *testing.T) {
	secret := hexOf(key(t).Public()) // 64 hex digits, as a key's
	pk := "public_key=" + hexOf(key(t).Public()) + "\n"
	for _, tc := range []struct{ name, in string }{
		{"private_key without =", "private_key " + secret + "\n\n"},
		{"private_key with :", "private_key:" + secret + "\n\n"},
		{"private_key too long", "private_key=" + secret + "0\n\n"},
		{"private_key alone", secret + "\n\n"},
		{"private_key as the key", secret + "=1\n\n"},
		{"preshared_key without =", pk + "preshared_key " + secret + "\n\n"},
		{"preshared_key with :", pk + "preshared_key:" + secret + "=\n\n"},
		{"preshared_key too short", pk + "preshared_key=" + secret[:63] + "\n\n"},
		{"preshared_key misspelt", pk + "presharedkey" + secret + "=1\n\n"},
	} {
		_, err := parse(tc.in)
		if err == nil {
			t.Errorf("%s: parsed", tc.name)
			continue
		}
		for i := 0; i+8 <= len(secret); i++ {
			if strings.Contains(err.Error(), secret[i:i+8]) {
				t.Errorf("%s: the error quotes part of the key: %v", tc.name, err)
				break
			}
		}
	}
}
