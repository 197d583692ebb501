package ifsetup

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pipeguard/cmd/internal/netnstest"
	"pipeguard/tunio"
)

// tun is a TUN device in ns for one test, closed in cleanup.
func tun(t *testing.T, ns *netnstest.NS) (string, tunio.Device) {
	t.Helper()
	name := netnstest.UniqueName("pg")
	var dev tunio.Device
	if err := ns.Do(func() (err error) { dev, err = tunio.CreateTUN(name, 1280); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return name, dev
}

// up runs Up in ns.
func up(ns *netnstest.NS, cfg Config) (*Interface, error) {
	var i *Interface
	err := ns.Do(func() (err error) { i, err = Up(cfg, quiet()); return err })
	return i, err
}

// routesOf is `ip route show table T` of both families in ns; a table
// that does not exist (yet) in a family is empty.
func routesOf(t *testing.T, ns *netnstest.NS, table string) string {
	t.Helper()
	var out string
	for _, fam := range []string{"-4", "-6"} {
		o, err := ns.Run("ip", fam, "route", "show", "table", table)
		if err != nil && !strings.Contains(o, "table does not exist") {
			t.Fatalf("ip %s route show table %s: %v\n%s", fam, table, err, o)
		}
		if err == nil {
			out += o
		}
	}
	return out
}

// rulesOf is `ip rule show` of both families in ns.
func rulesOf(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	return ns.MustRun(t, "ip", "-4", "rule", "show") + ns.MustRun(t, "ip", "-6", "rule", "show")
}

// TestUpRefusesConflictingRoute:
// an AllowedIPs prefix that another interface already routes was skipped
// as if it were the kernel's own subnet route (EEXIST), so its traffic
// left in cleartext. Up must refuse, naming the route, for both families
// and whatever the other route's metric; a reload must refuse too.
func TestUpRefusesConflictingRoute(t *testing.T) {
	netnstest.RequireRoot(t)
	ns, far := netnstest.New(t), netnstest.New(t)
	veth, _ := netnstest.Link(t, ns, far, netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24"))
	ns.MustRun(t, "ip", "addr", "add", "fd99::1/64", "dev", veth, "nodad")
	ns.MustRun(t, "ip", "route", "add", "10.78.0.0/24", "via", "10.99.0.2", "dev", veth)
	// A higher metric than ours would be, and no EEXIST: it still wins
	// over nothing if our route is ever missing, and makes the admin's
	// intent unclear. IPv6 routes get metric 1024 by default.
	ns.MustRun(t, "ip", "-6", "route", "add", "fd78::/64", "via", "fd99::2", "dev", veth, "metric", "100")

	for _, tc := range []struct {
		prefix string
		want   string
	}{
		{"10.78.0.0/24", "10.78.0.0/24 via 10.99.0.2 dev " + veth},
		{"fd78::/64", "fd78::/64 via fd99::2 dev " + veth},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			name, _ := tun(t, ns)
			_, err := up(ns, Config{Name: name, MTU: 1280, Addresses: pfxs("10.7.0.2/24", "fd07::2/64"),
				Routes: pfxs("10.8.0.0/16", tc.prefix)})
			if !errors.Is(err, ErrRouteConflict) {
				t.Fatalf("Up: %v, want ErrRouteConflict", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not name the route %q", err, tc.want)
			}
			// Nothing of ours stays; the other route is untouched.
			if out := routesOf(t, ns, "main"); strings.Contains(out, "10.8.0.0/16") || !strings.Contains(out, tc.want) {
				t.Errorf("after the refusal:\n%s", out)
			}
		})
	}

	t.Run("reload", func(t *testing.T) {
		name, _ := tun(t, ns)
		i, err := up(ns, Config{Name: name, MTU: 1280, Addresses: pfxs("10.7.0.2/24"), Routes: pfxs("10.8.0.0/16")})
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Do(i.Down)
		want := pfxs("10.8.0.0/16", "10.78.0.0/24")
		if err := ns.Do(func() error { return i.CheckRoutes(want, nil) }); !errors.Is(err, ErrRouteConflict) {
			t.Errorf("CheckRoutes on reload: %v, want ErrRouteConflict", err)
		}
		if err := ns.Do(func() error { return i.SetRoutes(want) }); !errors.Is(err, ErrRouteConflict) {
			t.Errorf("SetRoutes on reload: %v, want ErrRouteConflict", err)
		}
		if got := i.Routes(); !slices.Equal(got, []string{"10.8.0.0/16"}) {
			t.Errorf("routes after the refused reload: %v", got)
		}
	})
}

// TestRestoreAfterLinkBounce: `ip link set IFACE down; up` loses the routes (and the IPv6
// addresses); Restore puts back exactly what Up added.
func TestRestoreAfterLinkBounce(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	name, _ := tun(t, ns)
	i, err := up(ns, Config{Name: name, MTU: 1280, Addresses: pfxs("10.7.0.2/24", "fd07::2/64"),
		Routes: pfxs("10.8.0.0/16", "fd08::/64")})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Do(i.Down)
	ns.MustRun(t, "ip", "link", "set", name, "down")
	ns.MustRun(t, "ip", "link", "set", name, "up")
	lost := routesOf(t, ns, "main")
	if strings.Contains(lost, "10.8.0.0/16") || strings.Contains(lost, "fd08::/64") {
		t.Fatalf("the kernel kept the routes over a bounce; this test shows nothing:\n%s", lost)
	}
	if err := ns.Do(i.Restore); err != nil {
		t.Fatal(err)
	}
	routes := routesOf(t, ns, "main")
	addrs := ns.MustRun(t, "ip", "addr", "show", "dev", name)
	for _, want := range []string{"10.8.0.0/16 dev " + name, "fd08::/64 dev " + name, "10.7.0.0/24 dev " + name} {
		if !strings.Contains(routes, want) {
			t.Errorf("after Restore, no route %q:\n%s", want, routes)
		}
	}
	for _, want := range []string{"10.7.0.2/24", "fd07::2/64"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("after Restore, no address %s:\n%s", want, addrs)
		}
	}
	// Restore again: nothing missing, nothing done, no error.
	if err := ns.Do(i.Restore); err != nil {
		t.Fatal(err)
	}
}

// TestFullTunnel checks wg-quick's policy routing for 0.0.0.0/0 and ::/0,
// the next tunnel's table, Down removing every rule and route, and the
// other Table modes.
func TestFullTunnel(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	name, _ := tun(t, ns)
	ep := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820")}
	before := rulesOf(t, ns)
	i, err := up(ns, Config{Name: name, MTU: 1280, Addresses: pfxs("10.7.0.2/24", "fd07::2/64"),
		Routes: pfxs("0.0.0.0/0", "::/0", "10.8.0.0/16"), Endpoints: ep})
	if err != nil {
		t.Fatal(err)
	}
	if m := i.FwMark(); m != 51820 {
		t.Errorf("FwMark = %d, want 51820", m)
	}
	if got := routesOf(t, ns, "51820"); strings.Count(got, "default dev "+name) != 2 {
		t.Errorf("table 51820:\n%s", got)
	}
	if got := routesOf(t, ns, "main"); !strings.Contains(got, "10.8.0.0/16 dev "+name) || strings.Contains(got, "default") {
		t.Errorf("main table:\n%s", got)
	}
	rules := rulesOf(t, ns)
	if n := strings.Count(rules, "not from all fwmark 0xca6c lookup 51820"); n != 2 {
		t.Errorf("%d not-fwmark rules, want one per family:\n%s", n, rules)
	}
	if n := strings.Count(rules, "from all lookup main suppress_prefixlength 0"); n != 2 {
		t.Errorf("%d suppress rules, want one per family:\n%s", n, rules)
	}
	if v := strings.TrimSpace(ns.MustRun(t, "sysctl", "-n", "net.ipv4.conf.all.src_valid_mark")); v != "1" {
		t.Errorf("src_valid_mark = %s", v)
	}

	// A second full tunnel takes the next table and adds its own rules.
	name2, _ := tun(t, ns)
	i2, err := up(ns, Config{Name: name2, MTU: 1280, Routes: pfxs("0.0.0.0/0")})
	if err != nil {
		t.Fatal(err)
	}
	if m := i2.FwMark(); m != 51821 {
		t.Errorf("second tunnel's FwMark = %d, want 51821", m)
	}
	if err := ns.Do(i2.Down); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, ns); got != rules {
		t.Errorf("the second tunnel's Down changed the first's rules:\n%s\nwant\n%s", got, rules)
	}

	// A reload may not end the full tunnel.
	if err := ns.Do(func() error { return i.CheckRoutes(pfxs("10.8.0.0/16"), ep) }); !errors.Is(err, ErrFullTunnel) {
		t.Errorf("reload without 0.0.0.0/0: %v, want ErrFullTunnel", err)
	}
	if err := ns.Do(i.Down); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, ns); got != before {
		t.Errorf("rules after Down:\n%s\nwant\n%s", got, before)
	}
	if got := routesOf(t, ns, "51820"); got != "" {
		t.Errorf("table 51820 after Down:\n%s", got)
	}

	t.Run("FwMark", func(t *testing.T) {
		name, _ := tun(t, ns)
		i, err := up(ns, Config{Name: name, MTU: 1280, Routes: pfxs("::/0"), FwMark: 0x1234})
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Do(i.Down)
		if i.FwMark() != 0x1234 || !strings.Contains(routesOf(t, ns, "4660"), "default dev "+name) {
			t.Errorf("FwMark %#x, table 4660:\n%s", i.FwMark(), routesOf(t, ns, "4660"))
		}
		if !strings.Contains(rulesOf(t, ns), "not from all fwmark 0x1234 lookup 4660") {
			t.Errorf("rules:\n%s", rulesOf(t, ns))
		}
	})
	t.Run("Table=off", func(t *testing.T) {
		name, _ := tun(t, ns)
		i, err := up(ns, Config{Name: name, MTU: 1280, Routes: pfxs("0.0.0.0/0", "10.8.0.0/16"), Table: TableOff, Endpoints: ep})
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Do(i.Down)
		if got := ns.MustRun(t, "ip", "route", "show", "table", "all", "dev", name); strings.Contains(got, "10.8") || strings.Contains(got, "default") {
			t.Errorf("Table = off added routes:\n%s", got)
		}
		if i.FwMark() != 0 || rulesOf(t, ns) != before {
			t.Errorf("Table = off: FwMark %d, rules\n%s", i.FwMark(), rulesOf(t, ns))
		}
	})
	t.Run("Table=1234", func(t *testing.T) {
		name, _ := tun(t, ns)
		i, err := up(ns, Config{Name: name, MTU: 1280, Routes: pfxs("0.0.0.0/0", "10.8.0.0/16"), Table: 1234, Endpoints: ep})
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Do(i.Down)
		got := routesOf(t, ns, "1234")
		if !strings.Contains(got, "default dev "+name) || !strings.Contains(got, "10.8.0.0/16 dev "+name) {
			t.Errorf("table 1234:\n%s", got)
		}
		if rulesOf(t, ns) != before {
			t.Errorf("Table = 1234 added rules:\n%s", rulesOf(t, ns))
		}
	})
}

// TestFullTunnelAfterCrash: a run that is killed leaves its rules (the
// interface and its routes go with the process); the next start of the
// same interface removes them by its state file, and only them.
func TestFullTunnelAfterCrash(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	state := filepath.Join(t.TempDir(), "rules.pg0.json")
	before := rulesOf(t, ns)
	// Someone else's identical suppress rule, which must survive.
	ns.MustRun(t, "ip", "rule", "add", "table", "main", "suppress_prefixlength", "0")
	others := rulesOf(t, ns)

	name, dev := tun(t, ns)
	cfg := Config{Name: name, MTU: 1280, Routes: pfxs("0.0.0.0/0", "::/0"), StateFile: state}
	if _, err := up(ns, cfg); err != nil {
		t.Fatal(err)
	}
	dev.Close() // the crash: no Down
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file: %v", err)
	}
	left := rulesOf(t, ns)
	if strings.Count(left, "lookup 51820") != 2 {
		t.Fatalf("the crashed run's rules:\n%s", left)
	}

	// The next start: same interface name, same state file.
	if err := ns.Do(func() (err error) { dev, err = tunio.CreateTUN(name, 1280); return err }); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	i, err := up(ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly one run's rules now, besides the other suppress rule.
	now := rulesOf(t, ns)
	if strings.Count(now, "lookup 51820") != 2 || strings.Count(now, "suppress_prefixlength 0") != 3 {
		t.Errorf("after the restart:\n%s", now)
	}
	if err := ns.Do(i.Down); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, ns); got != others {
		t.Errorf("after Down:\n%s\nwant\n%s", got, others)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
	ns.MustRun(t, "ip", "rule", "del", "table", "main", "suppress_prefixlength", "0")
	if got := rulesOf(t, ns); got != before {
		t.Errorf("rules:\n%s\nwant\n%s", got, before)
	}
}
