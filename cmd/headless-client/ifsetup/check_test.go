package ifsetup

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"pipeguard/cmd/internal/netnstest"
)

// TestCheckConflicts: before the interface exists, a prefix that a route
// in its table already has is refused, naming that route, and nothing
// else is; the namespace's routes stay as they were.
func TestCheckConflicts(t *testing.T) {
	netnstest.RequireRoot(t)
	ns, other := netnstest.New(t), netnstest.New(t)
	dev, _ := netnstest.Link(t, ns, other, netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24"))
	ns.MustRun(t, "ip", "route", "add", "10.78.0.0/24", "dev", dev)
	ns.MustRun(t, "ip", "-6", "route", "add", "fd78::/64", "dev", dev, "metric", "7")
	ns.MustRun(t, "ip", "route", "add", "10.79.0.0/24", "dev", dev, "table", "100")
	before := ns.MustRun(t, "ip", "route", "show", "table", "all")
	for _, tc := range []struct {
		routes string
		table  int64
		want   string // in the error; "" for none
	}{
		{"10.78.0.0/24", TableAuto, `the route "10.78.0.0/24 dev ` + dev},
		{"10.78.0.9/24", TableAuto, `the route "10.78.0.0/24 dev ` + dev},
		{"10.80.0.0/24, fd78::/64", TableAuto, `the route "fd78::/64 dev ` + dev},
		{"10.78.0.0/25, 10.79.0.0/24, 0.0.0.0/0", TableAuto, ""},
		{"10.78.0.0/24", TableOff, ""},
		{"10.78.0.0/24", 100, ""},
		{"10.79.0.0/24", 100, `the route "10.79.0.0/24 dev ` + dev},
	} {
		var routes = pfxs(strings.Split(tc.routes, ", ")...)
		err := ns.Do(func() error { return CheckConflicts("pg-new", routes, tc.table) })
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrRouteConflict) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s table %d: %v, want %q", tc.routes, tc.table, err, tc.want)
		}
	}
	if after := ns.MustRun(t, "ip", "route", "show", "table", "all"); after != before {
		t.Errorf("routes changed:\n%s\nwas\n%s", after, before)
	}
}

// TestBypass: a full tunnel of one family names the other if the main
// table has routes of it beyond the link-local ones, and nothing
// otherwise.
func TestBypass(t *testing.T) {
	netnstest.RequireRoot(t)
	ns, other := netnstest.New(t), netnstest.New(t)
	dev, _ := netnstest.Link(t, ns, other, netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24"))
	ns.SettleIPv6(t) // the link-local route is there, and must not count
	check := func(routes string, table int64) (string, []string) {
		t.Helper()
		var fam string
		var via []string
		if err := ns.Do(func() (err error) { fam, via, err = Bypass(pfxs(strings.Split(routes, ", ")...), table); return err }); err != nil {
			t.Fatal(err)
		}
		return fam, via
	}
	for _, tc := range []struct {
		routes string
		table  int64
		want   string
	}{
		{"0.0.0.0/0", TableAuto, ""}, // IPv6 has only its link-local route
		{"::/0", TableAuto, "IPv4"},
		{"0.0.0.0/0, ::/0", TableAuto, ""},
		{"10.0.0.0/8", TableAuto, ""},
	} {
		if got, via := check(tc.routes, tc.table); got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.routes, got, via, tc.want)
		}
	}
	ns.MustRun(t, "ip", "addr", "add", "fd99::1/64", "dev", dev, "nodad")
	for _, tc := range []struct {
		routes string
		table  int64
		want   string
	}{
		{"0.0.0.0/0", TableAuto, "IPv6"},
		{"0.0.0.0/0", TableOff, ""},
		{"0.0.0.0/0", 1234, ""},
		{"0.0.0.0/0, ::/0", TableAuto, ""},
	} {
		got, via := check(tc.routes, tc.table)
		if got != tc.want {
			t.Errorf("with an IPv6 address, %s table %d: %q %v, want %q", tc.routes, tc.table, got, via, tc.want)
		}
		if got != "" && (len(via) != 1 || !strings.HasPrefix(via[0], "fd99::/64 dev "+dev)) {
			t.Errorf("with an IPv6 address, %s: via %q, want the route of fd99::/64", tc.routes, via)
		}
	}
}
