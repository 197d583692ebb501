package config

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Keys made with `wg genkey`/`wg pubkey`; kPriv's public key is kSelf.
const (
	kPriv = "2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY="
	kSelf = "z+qMd3qXLzfZCIalA7en3XlPd5Eib7khahUrcVu9oQM="
	kPeer = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	kPSK  = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
)

const good = `# a full file, in the mixed case and spacing admins write
[Interface]
PrivateKey = ` + kPriv + `
Address = 10.0.0.2/24, fd00::2/64
address=10.0.1.2
ListenPort = 51820
MTU = 1280
DNS = 10.0.0.1, fd00::1, corp.example
[Peer]  # the hub
PublicKey = ` + kPeer + `
PresharedKey = ` + kPSK + `
Endpoint = vpn.example.com:51820
AllowedIPs = 10.0.0.0/24, fd00::/64
AllowedIPs = 192.168.7.9/16
PersistentKeepalive = 25
`

func TestParseGood(t *testing.T) {
	c, err := Parse("pg0.conf", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Interface
	if in.PrivateKey.String() != kPriv || in.PrivateKey.Public().String() != kSelf {
		t.Errorf("private key %s", in.PrivateKey)
	}
	wantAddr := []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24"), netip.MustParsePrefix("fd00::2/64"), netip.MustParsePrefix("10.0.1.2/32")}
	if !slices.Equal(in.Addresses, wantAddr) {
		t.Errorf("addresses %v, want %v", in.Addresses, wantAddr)
	}
	if in.ListenPort != 51820 || in.MTU != 1280 {
		t.Errorf("port %d mtu %d", in.ListenPort, in.MTU)
	}
	if want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}; !slices.Equal(in.DNS, want) || !slices.Equal(in.DNSSearch, []string{"corp.example"}) {
		t.Errorf("dns %v search %v", in.DNS, in.DNSSearch)
	}
	if len(c.Peers) != 1 {
		t.Fatalf("%d peers", len(c.Peers))
	}
	pe := c.Peers[0]
	if pe.PublicKey.String() != kPeer || pe.PresharedKey.String() != kPSK || pe.Endpoint != "vpn.example.com:51820" {
		t.Errorf("peer %+v", pe)
	}
	wantIPs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("192.168.0.0/16")}
	if !slices.Equal(pe.AllowedIPs, wantIPs) {
		t.Errorf("allowed %v, want %v (masked)", pe.AllowedIPs, wantIPs)
	}
	if pe.PersistentKeepalive != 25*time.Second || pe.Line != 9 || pe.EndpointLine != 12 || pe.File != "pg0.conf" {
		t.Errorf("keepalive %v line %d endpoint line %d file %s", pe.PersistentKeepalive, pe.Line, pe.EndpointLine, pe.File)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("x", []byte("[Interface]\nPrivateKey="+kPriv+"\n[Peer]\nPublicKey="+kPeer+"\nPersistentKeepalive = off\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interface.MTU != DefaultMTU || c.Interface.ListenPort != 0 || c.Peers[0].PersistentKeepalive != 0 || c.Peers[0].Endpoint != "" {
		t.Errorf("defaults: %+v %+v", c.Interface, c.Peers[0])
	}
}

func TestParseTableAndFwMark(t *testing.T) {
	iface := "[Interface]\nPrivateKey = " + kPriv + "\n"
	for _, tc := range []struct {
		text   string
		table  int64
		fwmark uint32
	}{
		{"", TableAuto, 0},
		{"Table = auto\n", TableAuto, 0},
		{"table = OFF\n", TableOff, 0},
		{"Table = 1234\n", 1234, 0},
		{"Table = 4294967295\n", 4294967295, 0},
		{"FwMark = 51820\n", TableAuto, 51820},
		{"FwMark = 0xCA6C\nTable = 7\n", 7, 0xca6c},
		{"fwmark = off\n", TableAuto, 0},
		{"FwMark = 0\n", TableAuto, 0},
		{"FwMark = 0xffffffff\n", TableAuto, 0xffffffff},
	} {
		c, err := Parse("pg0.conf", []byte(iface+tc.text))
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if c.Interface.Table != tc.table || c.Interface.FwMark != tc.fwmark {
			t.Errorf("%q: Table %d FwMark %#x, want %d %#x", tc.text, c.Interface.Table, c.Interface.FwMark, tc.table, tc.fwmark)
		}
		again, err := Parse("again", []byte(c.Format()))
		if err != nil || !sameConfig(c, again) {
			t.Errorf("%q: round trip through Format: %v\n%s", tc.text, err, c.Format())
		}
	}
}

func TestParseErrors(t *testing.T) {
	iface := "[Interface]\nPrivateKey = " + kPriv + "\n"
	peer := "[Peer]\nPublicKey = " + kPeer + "\n"
	for _, tc := range []struct {
		name string
		text string
		err  error
		line int // 0: no line
		msg  string
	}{
		{"unknown interface key", iface + "Foo = 1\n", ErrUnknownKey, 3, "Foo"},
		{"unknown peer key", iface + peer + "Endpiont = 1.2.3.4:5\n", ErrUnknownKey, 5, "Endpiont"},
		{"wg-quick hook", iface + "PostUp = iptables -A\n", ErrUnknownKey, 3, "hook"},
		{"unknown section", "[Interfaces]\n", ErrUnknownSect, 1, "Interfaces"},
		{"unclosed header", "[Interface\n", ErrSyntax, 1, "]"},
		{"no equals", iface + "Address 10.0.0.1/24\n", ErrSyntax, 3, "Address must be followed by ="},
		{"no equals, no key", iface + "10.0.0.1/24\n", ErrSyntax, 3, "Key = Value"},
		{"key before section", "PrivateKey = " + kPriv + "\n", ErrSyntax, 1, "before"},
		{"empty value", iface + "Address =\n", ErrBadValue, 3, "no value"},
		{"bad private key", "[Interface]\nPrivateKey = abc\n", ErrBadKey, 2, "PrivateKey"},
		{"zero private key", "[Interface]\nPrivateKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", ErrBadKey, 2, "PrivateKey"},
		{"bad public key", iface + "[Peer]\nPublicKey = " + kPeer[:43] + "\n", ErrBadKey, 4, "PublicKey"},
		{"low-order public key", iface + "[Peer]\nPublicKey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", ErrBadKey, 4, "low-order"},
		{"bad psk", iface + peer + "PresharedKey = nope\n", ErrBadKey, 5, "PresharedKey"},
		{"bad cidr", iface + "Address = 10.0.0.300/24\n", ErrBadCIDR, 3, "10.0.0.300"},
		{"bad prefix length", iface + peer + "AllowedIPs = 10.0.0.0/33\n", ErrBadCIDR, 5, "/33"},
		{"empty list item", iface + peer + "AllowedIPs = 10.0.0.0/8,,fd00::/8\n", ErrBadCIDR, 5, "empty"},
		{"zoned address", iface + "Address = fe80::1%eth0\n", ErrBadCIDR, 3, "fe80"},
		{"endpoint no port", iface + peer + "Endpoint = 1.2.3.4\n", ErrBadEndpoint, 5, "host:port"},
		{"endpoint port 0", iface + peer + "Endpoint = 1.2.3.4:0\n", ErrBadEndpoint, 5, "port"},
		{"endpoint port too big", iface + peer + "Endpoint = 1.2.3.4:65536\n", ErrBadEndpoint, 5, "port"},
		{"endpoint bad host", iface + peer + "Endpoint = bad_host!:51820\n", ErrBadEndpoint, 5, "host"},
		{"endpoint unbracketed v6", iface + peer + "Endpoint = fd00::1:51820\n", ErrBadEndpoint, 5, "IPv6"},
		{"endpoint unspecified", iface + peer + "Endpoint = 0.0.0.0:51820\n", ErrBadEndpoint, 5, "usable"},
		{"listen port", iface + "ListenPort = 70000\n", ErrBadValue, 3, "ListenPort"},
		{"mtu too big", iface + "MTU = 1420\n", ErrBadValue, 3, "1280"},
		{"mtu too small", iface + "MTU = 500\n", ErrBadValue, 3, "MTU"},
		{"mtu too small for ipv6", iface + "MTU = 1200\nAddress = fd00::1/64\n", ErrBadValue, 1, "IPv6"},
		{"table name", iface + "Table = main\n", ErrBadValue, 3, "Table"},
		{"table zero", iface + "Table = 0\n", ErrBadValue, 3, "Table"},
		{"table too big", iface + "Table = 4294967296\n", ErrBadValue, 3, "Table"},
		{"table twice", iface + "Table = off\nTable = 7\n", ErrDuplicate, 4, "line 3"},
		{"table in peer", iface + peer + "Table = off\n", ErrUnknownKey, 5, "Table in [Peer]"},
		{"fwmark word", iface + "FwMark = on\n", ErrBadValue, 3, "FwMark"},
		{"fwmark too big", iface + "FwMark = 0x100000000\n", ErrBadValue, 3, "FwMark"},
		{"fwmark bare 0x", iface + "FwMark = 0x\n", ErrBadValue, 3, "FwMark"},
		{"fwmark negative", iface + "FwMark = -1\n", ErrBadValue, 3, "FwMark"},
		{"keepalive", iface + peer + "PersistentKeepalive = soon\n", ErrBadValue, 5, "PersistentKeepalive"},
		{"bad dns", iface + "DNS = not a name\n", ErrBadValue, 3, "DNS"},
		{"duplicate key", iface + "ListenPort = 1\nlistenport = 2\n", ErrDuplicate, 4, "line 3"},
		{"duplicate interface", iface + iface, ErrDuplicate, 3, "line 1"},
		{"duplicate peer", iface + peer + peer, ErrDuplicate, 5, "line 3"},
		{"no interface", peer, ErrMissing, 0, "no [Interface]"},
		{"no private key", "[Interface]\nListenPort = 1\n", ErrMissing, 1, "PrivateKey"},
		{"no public key", iface + "[Peer]\nEndpoint = 1.2.3.4:5\n", ErrMissing, 3, "PublicKey"},
		{"peer is self", iface + "[Peer]\nPublicKey = " + kSelf + "\n", ErrBadKey, 3, "own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("pg0.conf", []byte(tc.text))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			var le *LineError
			if got := errors.As(err, &le); got != (tc.line != 0) || (got && le.Line != tc.line) {
				t.Fatalf("error %q: want line %d", err, tc.line)
			}
			if tc.line != 0 && !strings.HasPrefix(err.Error(), "pg0.conf:") {
				t.Errorf("error %q does not start with the file name", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	if _, err := Parse("big", make([]byte, MaxFileSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	c, err := Parse("a", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse("b", []byte(c.Format()))
	if err != nil {
		t.Fatalf("reparse: %v\n%s", err, c.Format())
	}
	if !sameConfig(c, d) {
		t.Fatalf("round trip differs:\n%+v\n%+v", c, d)
	}
}

// sameConfig compares two configs, less positions.
func sameConfig(a, b *Config) bool {
	ai, bi := a.Interface, b.Interface
	if !ai.PrivateKey.Equal(bi.PrivateKey) || !slices.Equal(ai.Addresses, bi.Addresses) || ai.ListenPort != bi.ListenPort ||
		ai.MTU != bi.MTU || ai.Table != bi.Table || ai.FwMark != bi.FwMark || !slices.Equal(ai.DNS, bi.DNS) || !slices.Equal(ai.DNSSearch, bi.DNSSearch) || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Peers {
		p, q := a.Peers[i], b.Peers[i]
		if p.PublicKey != q.PublicKey || p.PresharedKey != q.PresharedKey || p.Endpoint != q.Endpoint ||
			!slices.Equal(p.AllowedIPs, q.AllowedIPs) || p.PersistentKeepalive != q.PersistentKeepalive {
			return false
		}
	}
	return true
}

func TestLoadChecksModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pg0.conf")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("mode 600: %v", err)
	}
	for _, mode := range []os.FileMode{0o400, 0o640, 0o604, 0o660, 0o620, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if ok := mode&0o077 == 0; ok != (err == nil) {
			t.Errorf("mode %04o: error %v", mode, err)
		}
		if err != nil && (!errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600")) {
			t.Errorf("mode %04o: error %q lacks the chmod hint", mode, err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkFile(path, mustStat(t, path), os.Geteuid()+1); !errors.Is(err, ErrOwner) {
		t.Errorf("other owner: %v, want ErrOwner", err)
	}
	if err := checkFile(dir, mustStat(t, dir), os.Geteuid()); !errors.Is(err, ErrBadValue) {
		t.Errorf("directory: %v, want ErrBadValue", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestInterfaceName(t *testing.T) {
	for path, want := range map[string]string{
		"/etc/pipeguard/pg0.conf":  "pg0",
		"wg-home.conf":             "wg-home",
		"/x/nosuffix":              "nosuffix",
		"/x/a-very-long-name.conf": "",
		"/x/sp ace.conf":           "",
		"/x/.conf":                 "",
	} {
		got, err := InterfaceName(path)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("InterfaceName(%q) = %q, %v; want %q", path, got, err, want)
		}
		if err != nil && !errors.Is(err, ErrBadInterface) {
			t.Errorf("InterfaceName(%q): error %v is not ErrBadInterface", path, err)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	table := map[string][]netip.Addr{
		"both.example": {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")},
		"v6.example":   {netip.MustParseAddr("2001:db8::2")},
		"none.example": {},
	}
	lookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		a, ok := table[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		return a, nil
	}
	for ep, want := range map[string]string{
		"":                    "",
		"192.0.2.9:1":         "192.0.2.9:1",
		"[2001:db8::9]:2":     "[2001:db8::9]:2",
		"[::ffff:1.2.3.4]:3":  "1.2.3.4:3",
		"both.example:51820":  "192.0.2.1:51820",
		"v6.example:51820":    "[2001:db8::2]:51820",
		"none.example:51820":  "error",
		"nxdomain.example:51": "error",
	} {
		pe := Peer{Endpoint: ep, File: "f", EndpointLine: 7}
		got, err := pe.ResolveEndpoint(context.Background(), lookup)
		switch {
		case want == "error":
			var le *LineError
			if !errors.Is(err, ErrBadEndpoint) || !errors.As(err, &le) || le.Line != 7 {
				t.Errorf("%q: error %v, want ErrBadEndpoint at line 7", ep, err)
			}
		case err != nil:
			t.Errorf("%q: %v", ep, err)
		case want == "" && got.IsValid(), want != "" && got.String() != want:
			t.Errorf("%q resolved to %v, want %q", ep, got, want)
		}
	}
}

// TestLoadChecksDirectory: a config in a directory that another uid owns
// or that others may write is refused, even when the file itself is the
// euid's with mode 0600: that uid could swap it for a link to another of
// root's files. So is a link to a file in such a directory.
func TestLoadChecksDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test must run as root")
		}
		t.Skip("needs root (to chown to another uid)")
	}
	const otherUID = 64000
	base := t.TempDir()
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int
		ok    bool
	}{
		{"root's 0700", 0o700, 0, true},
		{"root's 0755", 0o755, 0, true},
		{"another uid's", 0o700, otherUID, false},
		{"group-writable", 0o770, 0, false},
	} {
		dir := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-"))
		os.Mkdir(dir, tc.mode)
		os.Chmod(dir, tc.mode)
		path := filepath.Join(dir, "pg0.conf")
		if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, tc.owner, tc.owner); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if (err == nil) != tc.ok || err != nil && (!errors.Is(err, ErrDirectory) || !strings.Contains(err.Error(), dir)) {
			t.Errorf("%s: %v, want ok %v (or ErrDirectory naming %s)", tc.name, err, tc.ok, dir)
		}
		link := filepath.Join(base, "link-to-"+filepath.Base(dir)+".conf")
		os.Symlink(path, link)
		if _, err := Load(link); (err == nil) != tc.ok {
			t.Errorf("%s, through a link: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
