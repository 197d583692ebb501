package uapi

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// applyRig is a real tunnel (not started: the control API works without
// Serve) on a rebindable in-memory socket at 192.0.2.1:51820, with peers
// A (10.0.0.2/32, endpoint 192.0.2.2:51820) and B (10.0.0.3/32,
// 10.0.9.0/24). Port 51999 of its address is taken by another socket.
type applyRig struct {
	tun  *stages.Tunnel
	key  noise.PrivateKey
	a, b noise.PrivateKey // the peers' keys: tests need A's private key too
}

func newApplyRig(t *testing.T) *applyRig {
	t.Helper()
	r := newEmptyRig(t)
	r.key, r.a, r.b = key(t), key(t), key(t)
	if err := r.tun.SetPrivateKey(r.key); err != nil {
		t.Fatal(err)
	}
	for _, pc := range []stages.PeerConfig{
		{PublicKey: r.a.Public(), Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"), AllowedIPs: prefixes("10.0.0.2/32")},
		{PublicKey: r.b.Public(), AllowedIPs: prefixes("10.0.0.3/32", "10.0.9.0/24")},
	} {
		if err := r.tun.AddPeer(pc); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// newEmptyRig is a tunnel as the tunnel mode starts one: no key, no
// peers, on a rebindable socket at 192.0.2.1:51820 (port 51999 taken).
func newEmptyRig(t *testing.T) *applyRig {
	t.Helper()
	net := memudp.NewNetwork()
	ip := netip.MustParseAddr("192.0.2.1")
	udp, err := tunio.NewRebindConn(net.ListenFunc(ip), 51820, 0)
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen(netip.AddrPortFrom(ip, 51999))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); udp.Close(); taken.Close() })
	r := &applyRig{}
	if r.tun, err = stages.New(stages.Config{}, dev, udp, nil, quiet()); err != nil {
		t.Fatal(err)
	}
	return r
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// set parses and applies body, as the server does, and returns the errno
// the server would answer.
func (r *applyRig) set(t *testing.T, body string) int64 {
	t.Helper()
	req, err := parse(body + "\n")
	if err == nil {
		err = Apply(r.tun, req)
	}
	return Errno(err)
}

func (r *applyRig) peer(t *testing.T, k noise.PrivateKey) stages.PeerStatus {
	t.Helper()
	st, ok := r.tun.Peer(k.Public())
	if !ok {
		t.Fatalf("no peer %s", k.Public())
	}
	return st
}

func (r *applyRig) allowed(t *testing.T, k noise.PrivateKey) []netip.Prefix {
	t.Helper()
	return r.peer(t, k).AllowedIPs
}

func (r *applyRig) peerKeys() []noise.PublicKey {
	var out []noise.PublicKey
	for _, p := range r.tun.Peers() {
		out = append(out, p.PublicKey)
	}
	return out
}

func pub(k noise.PrivateKey) string { return "public_key=" + hexOf(k.Public()) + "\n" }

// TestApplyKeys: every key of a set request, applied to a real tunnel.
func TestApplyKeys(t *testing.T) {
	k1, c := key(t), key(t)
	for _, tc := range []struct {
		name  string
		body  func(r *applyRig) string
		check func(t *testing.T, r *applyRig)
	}{
		{"private_key change", func(r *applyRig) string { return "private_key=" + hexOf(k1) + "\n" }, func(t *testing.T, r *applyRig) {
			if !r.tun.PrivateKey().Equal(k1) || len(r.tun.Peers()) != 2 {
				t.Errorf("key %v, %d peers", r.tun.PrivateKey().Equal(k1), len(r.tun.Peers()))
			}
		}},
		{"private_key same", func(r *applyRig) string { return "private_key=" + hexOf(r.key) + "\n" }, func(t *testing.T, r *applyRig) {
			if !r.tun.PrivateKey().Equal(r.key) {
				t.Error("key changed")
			}
		}},
		{"private_key zero removes it", func(r *applyRig) string { return "private_key=" + hexOf(noise.PrivateKey{}) + "\n" }, func(t *testing.T, r *applyRig) {
			if !r.tun.PrivateKey().IsZero() {
				t.Error("key not removed")
			}
			if m := getMap(AppendGet(nil, r.tun)); m["private_key"] != nil {
				t.Errorf("get reports %v", m["private_key"])
			}
		}},
		{"private_key of a peer removes that peer", func(r *applyRig) string { return "private_key=" + hexOf(r.a) + "\n" }, func(t *testing.T, r *applyRig) {
			if keys := r.peerKeys(); !slices.Equal(keys, []noise.PublicKey{r.b.Public()}) {
				t.Errorf("peers %v, want B alone", keys)
			}
		}},
		{"listen_port", func(*applyRig) string { return "listen_port=51830\n" }, func(t *testing.T, r *applyRig) {
			if r.tun.LocalAddr().Port() != 51830 {
				t.Errorf("at %v", r.tun.LocalAddr())
			}
		}},
		{"listen_port 0 is a free port", func(*applyRig) string { return "listen_port=0\n" }, func(t *testing.T, r *applyRig) {
			if p := r.tun.LocalAddr().Port(); p == 51820 || p == 0 {
				t.Errorf("at %v", r.tun.LocalAddr())
			}
		}},
		{"listen_port unchanged", func(*applyRig) string { return "listen_port=51820\n" }, func(t *testing.T, r *applyRig) {
			if r.tun.LocalAddr().Port() != 51820 {
				t.Errorf("at %v", r.tun.LocalAddr())
			}
		}},
		{"fwmark", func(*applyRig) string { return "fwmark=51820\n" }, func(t *testing.T, r *applyRig) {
			if m := getMap(AppendGet(nil, r.tun)); r.tun.FwMark() != 51820 || !slices.Equal(m["fwmark"], []string{"51820"}) {
				t.Errorf("mark %d, get %v", r.tun.FwMark(), m["fwmark"])
			}
		}},
		{"fwmark 0 removes it", func(*applyRig) string { return "fwmark=7\n" }, func(t *testing.T, r *applyRig) {
			if errno := r.set(t, "fwmark=0\n"); errno != 0 {
				t.Fatalf("errno %d", errno)
			}
			if m := getMap(AppendGet(nil, r.tun)); r.tun.FwMark() != 0 || m["fwmark"] != nil {
				t.Errorf("mark %d, get %v", r.tun.FwMark(), m["fwmark"])
			}
		}},
		{"listen_port and fwmark together", func(*applyRig) string { return "fwmark=3\nlisten_port=51831\n" }, func(t *testing.T, r *applyRig) {
			if r.tun.FwMark() != 3 || r.tun.LocalAddr().Port() != 51831 {
				t.Errorf("mark %d at %v", r.tun.FwMark(), r.tun.LocalAddr())
			}
		}},
		{"replace_peers", func(*applyRig) string { return "replace_peers=true\n" + pub(c) }, func(t *testing.T, r *applyRig) {
			if keys := r.peerKeys(); !slices.Equal(keys, []noise.PublicKey{c.Public()}) {
				t.Errorf("peers %v, want C alone", keys)
			}
		}},
		{"public_key creates", func(*applyRig) string { return pub(c) }, func(t *testing.T, r *applyRig) {
			if st := r.peer(t, c); st.Endpoint.IsValid() || len(st.AllowedIPs) != 0 || !st.PresharedKey.IsZero() {
				t.Errorf("new peer %+v", st)
			}
		}},
		{"update_only leaves an unknown peer alone", func(*applyRig) string { return pub(c) + "update_only=true\nallowed_ip=10.0.0.9/32\n" }, func(t *testing.T, r *applyRig) {
			if _, ok := r.tun.Peer(c.Public()); ok {
				t.Error("created")
			}
		}},
		{"update_only changes a known peer", func(r *applyRig) string { return pub(r.a) + "update_only=true\nendpoint=192.0.2.9:9\n" }, func(t *testing.T, r *applyRig) {
			if ep := r.peer(t, r.a).Endpoint.String(); ep != "192.0.2.9:9" {
				t.Errorf("endpoint %s", ep)
			}
		}},
		{"remove", func(r *applyRig) string { return pub(r.a) + "remove=true\n" + pub(c) + "remove=true\n" }, func(t *testing.T, r *applyRig) {
			if keys := r.peerKeys(); !slices.Equal(keys, []noise.PublicKey{r.b.Public()}) {
				t.Errorf("peers %v, want B alone", keys)
			}
		}},
		{"remove, then the same key again creates it afresh", func(r *applyRig) string { return pub(r.a) + "remove=true\n" + pub(r.a) }, func(t *testing.T, r *applyRig) {
			if st := r.peer(t, r.a); st.Endpoint.IsValid() || len(st.AllowedIPs) != 0 {
				t.Errorf("re-created peer kept its settings: %+v", st)
			}
		}},
		{"preshared_key", func(r *applyRig) string { return pub(r.a) + "preshared_key=" + hexOf(noise.PresharedKey{4}) + "\n" }, func(t *testing.T, r *applyRig) {
			if !r.peer(t, r.a).PresharedKey.Equal(noise.PresharedKey{4}) {
				t.Error("psk not set")
			}
		}},
		{"endpoint IPv6, and v4-mapped", func(r *applyRig) string {
			return pub(r.a) + "endpoint=[2001:db8::9]:4\n" + pub(r.b) + "endpoint=[::ffff:192.0.2.8]:5\n"
		}, func(t *testing.T, r *applyRig) {
			if a, b := r.peer(t, r.a).Endpoint.String(), r.peer(t, r.b).Endpoint.String(); a != "[2001:db8::9]:4" || b != "192.0.2.8:5" {
				t.Errorf("endpoints %s %s", a, b)
			}
		}},
		{"persistent_keepalive_interval", func(r *applyRig) string {
			return pub(r.a) + "persistent_keepalive_interval=25\n" + pub(r.b) + "persistent_keepalive_interval=7\npersistent_keepalive_interval=0\n"
		}, func(t *testing.T, r *applyRig) {
			if a, b := r.peer(t, r.a).PersistentKeepalive, r.peer(t, r.b).PersistentKeepalive; a != 25*time.Second || b != 0 {
				t.Errorf("keepalives %v %v", a, b)
			}
		}},
		{"allowed_ip adds, taking from another peer", func(r *applyRig) string { return pub(r.a) + "allowed_ip=10.0.9.0/24\nallowed_ip=fd00::2/128\n" }, func(t *testing.T, r *applyRig) {
			if a, b := r.allowed(t, r.a), r.allowed(t, r.b); !slices.Equal(a, prefixes("10.0.0.2/32", "10.0.9.0/24", "fd00::2/128")) || !slices.Equal(b, prefixes("10.0.0.3/32")) {
				t.Errorf("A %v, B %v", a, b)
			}
		}},
		{"allowed_ip - removes the peer's own only", func(r *applyRig) string { return pub(r.a) + "allowed_ip=-10.0.0.2/32\nallowed_ip=-10.0.9.0/24\n" }, func(t *testing.T, r *applyRig) {
			if a, b := r.allowed(t, r.a), r.allowed(t, r.b); len(a) != 0 || !slices.Equal(b, prefixes("10.0.0.3/32", "10.0.9.0/24")) {
				t.Errorf("A %v, B %v", a, b)
			}
		}},
		{"allowed_ip add then remove", func(r *applyRig) string { return pub(r.a) + "allowed_ip=10.7.0.0/16\nallowed_ip=-10.7.0.0/16\n" }, func(t *testing.T, r *applyRig) {
			if a := r.allowed(t, r.a); !slices.Equal(a, prefixes("10.0.0.2/32")) {
				t.Errorf("A %v", a)
			}
		}},
		{"allowed_ip remove then add", func(r *applyRig) string { return pub(r.a) + "allowed_ip=-10.0.0.2/32\nallowed_ip=10.0.0.2/32\n" }, func(t *testing.T, r *applyRig) {
			if a := r.allowed(t, r.a); !slices.Equal(a, prefixes("10.0.0.2/32")) {
				t.Errorf("A %v", a)
			}
		}},
		{"replace_allowed_ips", func(r *applyRig) string { return pub(r.a) + "replace_allowed_ips=true\nallowed_ip=10.5.0.0/16\n" }, func(t *testing.T, r *applyRig) {
			if a := r.allowed(t, r.a); !slices.Equal(a, prefixes("10.5.0.0/16")) {
				t.Errorf("A %v", a)
			}
		}},
		{"replace_allowed_ips after an add drops what the add took", func(r *applyRig) string {
			return pub(r.a) + "allowed_ip=10.0.9.0/24\nreplace_allowed_ips=true\nallowed_ip=10.5.0.0/16\n"
		}, func(t *testing.T, r *applyRig) {
			// As in wireguard-go: the prefix moved to A, then A's went.
			if a, b := r.allowed(t, r.a), r.allowed(t, r.b); !slices.Equal(a, prefixes("10.5.0.0/16")) || !slices.Equal(b, prefixes("10.0.0.3/32")) {
				t.Errorf("A %v, B %v", a, b)
			}
		}},
		{"protocol_version", func(r *applyRig) string { return pub(r.a) + "protocol_version=1\n" }, func(t *testing.T, r *applyRig) {}},
		{"our own public key is ignored", func(r *applyRig) string { return pub(r.key) + "allowed_ip=10.8.0.0/16\n" }, func(t *testing.T, r *applyRig) {
			if n := len(r.tun.Peers()); n != 2 {
				t.Errorf("%d peers", n)
			}
		}},
		{"private_key unclamped is clamped, and get shows it so", func(r *applyRig) string {
			u := k1
			u[0] |= 7
			u[31] = (u[31] | 0x80) &^ 0x40
			return "private_key=" + hexOf(u) + "\n"
		}, func(t *testing.T, r *applyRig) {
			if m := getMap(AppendGet(nil, r.tun)); len(m["private_key"]) != 1 || m["private_key"][0] != hexOf(k1) {
				t.Errorf("get reports private_key %v, want the clamped %s", m["private_key"], hexOf(k1))
			}
		}},
		{"public_key of low order is taken, as the kernel takes it", func(r *applyRig) string {
			return "public_key=" + hexOf(noise.PublicKey{}) + "\nendpoint=127.0.0.1:1111\npersistent_keepalive_interval=1\n" +
				"public_key=" + hexOf(noise.PublicKey{1}) + "\nallowed_ip=10.7.0.0/16\n"
		}, func(t *testing.T, r *applyRig) {
			if n := len(r.tun.Peers()); n != 4 {
				t.Errorf("%d peers, want 4", n)
			}
			if st, ok := r.tun.Peer(noise.PublicKey{1}); !ok || !slices.Equal(st.AllowedIPs, prefixes("10.7.0.0/16")) {
				t.Errorf("low-order peer: present %v, allowed IPs %v", ok, st.AllowedIPs)
			}
		}},
		{"the new key's public key is ignored too", func(r *applyRig) string { return "private_key=" + hexOf(k1) + "\n" + pub(k1) }, func(t *testing.T, r *applyRig) {
			if n := len(r.tun.Peers()); n != 2 {
				t.Errorf("%d peers", n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newApplyRig(t)
			if errno := r.set(t, tc.body(r)); errno != 0 {
				t.Fatalf("errno %d", errno)
			}
			tc.check(t, r)
		})
	}
}

// TestApplyRefusals: a request with any error gets wireguard-go's errno
// and changes nothing, whatever valid lines came before the bad one: the
// key, the port, the mark and the peers stay as they were.
func TestApplyRefusals(t *testing.T) {
	k1, c := key(t), key(t)
	// Valid changes to every part of the device, before the bad line.
	before := func(r *applyRig) string {
		return "private_key=" + hexOf(k1) + "\nlisten_port=51830\nfwmark=9\nreplace_peers=true\n" +
			pub(c) + "allowed_ip=10.0.0.0/8\n" + pub(r.a) + "remove=true\n"
	}
	peerLine := func(line string) func(r *applyRig) string {
		return func(r *applyRig) string { return before(r) + pub(r.b) + line + "\n" }
	}
	for _, tc := range []struct {
		name  string
		body  func(r *applyRig) string
		errno int64
	}{
		{"line without =", func(r *applyRig) string { return before(r) + "listen_port\n" }, -71},
		{"unknown device key", func(*applyRig) string { return "listen_port=51830\nmtu=1280\n" }, -22},
		{"device key after a peer", func(r *applyRig) string { return before(r) + "listen_port=51831\n" }, -22},
		{"private_key not hex", func(*applyRig) string { return "listen_port=51830\nprivate_key=" + noise.PrivateKey{}.String() + "\n" }, -22},
		{"listen_port not a port", func(*applyRig) string { return "fwmark=1\nlisten_port=65536\n" }, -22},
		{"listen_port taken", func(r *applyRig) string {
			return "private_key=" + hexOf(k1) + "\nfwmark=9\nlisten_port=51999\nreplace_peers=true\n" + pub(c)
		}, -98},
		{"fwmark not a number", func(*applyRig) string { return "listen_port=51830\nfwmark=x\n" }, -22},
		{"replace_peers not true", func(*applyRig) string { return "listen_port=51830\nreplace_peers=1\n" }, -22},
		{"unknown peer key", peerLine("mtu=1"), -22},
		{"update_only not true", peerLine("update_only=false"), -22},
		{"remove not true", peerLine("remove=yes"), -22},
		{"preshared_key short", peerLine("preshared_key=00"), -22},
		{"endpoint a name", peerLine("endpoint=example.com:51820"), -22},
		{"endpoint without port", peerLine("endpoint=192.0.2.1"), -22},
		{"persistent_keepalive_interval too big", peerLine("persistent_keepalive_interval=65536"), -22},
		{"replace_allowed_ips not true", peerLine("replace_allowed_ips=false"), -22},
		{"allowed_ip bad", peerLine("allowed_ip=10.0.0.0/33"), -22},
		{"protocol_version 2", peerLine("protocol_version=2"), -22},
		{"public_key not hex", func(r *applyRig) string { return before(r) + "public_key=zz\n" }, -22},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newApplyRig(t)
			was := string(AppendGet(nil, r.tun))
			if errno := r.set(t, tc.body(r)); errno != tc.errno {
				t.Errorf("errno %d, want %d", errno, tc.errno)
			}
			if now := string(AppendGet(nil, r.tun)); now != was {
				t.Errorf("a refused request changed the device:\nbefore:\n%s\nafter:\n%s", was, now)
			}
		})
	}
}

// TestApplyUnsupported: a tunnel whose socket cannot move answers a new
// listen port with EOPNOTSUPP, not "address in use", and changes
// nothing; the port it has is fine.
func TestApplyUnsupported(t *testing.T) {
	tun, _ := newTunnel(t)
	c := key(t)
	req, err := parse("listen_port=51830\n" + pub(c) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if errno := Errno(Apply(tun, req)); errno != -95 {
		t.Errorf("errno %d, want -95", errno)
	}
	if _, ok := tun.Peer(c.Public()); ok {
		t.Error("a refused request added a peer")
	}
	req, _ = parse("listen_port=51820\n" + pub(c) + "\n")
	if err := Apply(tun, req); err != nil {
		t.Errorf("the port it has: %v", err)
	}
}

// markLocked is a tunnel whose routing depends on its mark: it refuses
// any other, as a full tunnel does.
type markLocked struct {
	*stages.Tunnel
	checked []uint32
}

func (m *markLocked) CheckFwMark(mark uint32) error {
	m.checked = append(m.checked, mark)
	return errors.New("the policy rules match fwmark 51820")
}

// TestApplyMarkChecker: a device that is a MarkChecker is asked about a
// new mark before anything changes; its refusal is EINVAL and the whole
// request changes nothing. The mark it has needs no asking.
func TestApplyMarkChecker(t *testing.T) {
	r := newApplyRig(t)
	if errno := r.set(t, "fwmark=51820\n"); errno != 0 {
		t.Fatalf("setting the mark: errno %d", errno)
	}
	dev := &markLocked{Tunnel: r.tun}
	c := key(t)
	apply := func(body string) int64 {
		req, err := parse(body + "\n")
		if err == nil {
			err = Apply(dev, req)
		}
		return Errno(err)
	}
	was := string(AppendGet(nil, r.tun))
	for _, body := range []string{
		"fwmark=1\n",
		"fwmark=0\n",
		"listen_port=51830\nfwmark=7\nreplace_peers=true\n" + pub(c),
	} {
		if errno := apply(body); errno != -22 {
			t.Errorf("%q: errno %d, want -22", body, errno)
		}
		if now := string(AppendGet(nil, r.tun)); now != was {
			t.Errorf("%q: a refused request changed the device:\nbefore:\n%s\nafter:\n%s", body, was, now)
		}
	}
	if !slices.Equal(dev.checked, []uint32{1, 0, 7}) {
		t.Errorf("asked about %v, want [1 0 7]", dev.checked)
	}
	// The mark it has, with other changes: applied, not asked about.
	if errno := apply("fwmark=51820\nlisten_port=51830\n" + pub(c)); errno != 0 {
		t.Errorf("the same mark: errno %d", errno)
	}
	if len(dev.checked) != 3 || r.tun.LocalAddr().Port() != 51830 {
		t.Errorf("checked %v, port %d", dev.checked, r.tun.LocalAddr().Port())
	}
}
