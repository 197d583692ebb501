package ifsetup

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"pipeguard/cmd/internal/netnstest"
	"pipeguard/tunio"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestCheckRoutes(t *testing.T) {
	ep := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("[2001:db8::1]:51820"), {}}
	for _, tc := range []struct {
		routes []netip.Prefix
		table  int64
		loop   bool
	}{
		{pfxs("10.0.0.0/8", "fd00::/8"), TableAuto, false},
		// A full tunnel is policy routing: the endpoint is exempt.
		{pfxs("0.0.0.0/0"), TableAuto, false},
		{pfxs("::/0", "0.0.0.0/0"), TableAuto, false},
		{pfxs("192.0.2.0/24"), TableAuto, true},
		{pfxs("0.0.0.0/1", "128.0.0.0/1"), TableAuto, true},
		{pfxs("2001:db8::/33", "192.0.3.0/24"), TableAuto, true},
		{pfxs("192.0.2.2/32"), TableAuto, false},
		// Table = main routes 0.0.0.0/0 into the main table: a loop.
		{pfxs("0.0.0.0/0"), 254, true},
		// Another table, or none: the admin's rules decide.
		{pfxs("0.0.0.0/0", "192.0.2.0/24"), 1234, false},
		{pfxs("192.0.2.0/24"), TableOff, false},
	} {
		if err := CheckRoutes(tc.routes, ep, tc.table); errors.Is(err, ErrRouteLoop) != tc.loop {
			t.Errorf("%v table %d: error %v, want loop %v", tc.routes, tc.table, err, tc.loop)
		}
	}
}

// TestUpDown configures a real TUN in a private namespace and checks with
// iproute2 that Up adds exactly the addresses and routes, SetRoutes
// follows a change, and Down leaves nothing behind.
func TestUpDown(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	name := netnstest.UniqueName("pg")
	var dev tunio.Device
	if err := ns.Do(func() (err error) { dev, err = tunio.CreateTUN(name, 1280); return err }); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	var iface *Interface
	cfg := Config{
		Name:      name,
		MTU:       1280,
		Addresses: pfxs("10.7.0.2/24", "fd07::2/64"),
		// 10.7.0.0/24 is the address's subnet: the kernel's route stays.
		Routes: pfxs("10.7.0.0/24", "10.8.0.0/16", "10.8.1.2/16", "fd08::/64"),
	}
	if err := ns.Do(func() (err error) { iface, err = Up(cfg, quiet()); return err }); err != nil {
		t.Fatal(err)
	}
	if got := iface.Routes(); !slices.Equal(got, []string{"10.8.0.0/16", "fd08::/64"}) {
		t.Errorf("routes added %v", got)
	}
	link := ns.MustRun(t, "ip", "-o", "link", "show", name)
	if !strings.Contains(link, "mtu 1280") || !strings.Contains(link, "UP") {
		t.Errorf("link: %s", link)
	}
	addrs := ns.MustRun(t, "ip", "-o", "addr", "show", "dev", name)
	for _, want := range []string{"10.7.0.2/24", "fd07::2/64"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("address %s missing:\n%s", want, addrs)
		}
	}
	routes := ns.MustRun(t, "ip", "route", "show", "dev", name) + ns.MustRun(t, "ip", "-6", "route", "show", "dev", name)
	for _, want := range []string{"10.7.0.0/24", "10.8.0.0/16", "fd08::/64"} {
		if !strings.Contains(routes, want) {
			t.Errorf("route %s missing:\n%s", want, routes)
		}
	}
	// A reload drops 10.8.0.0/16 and adds 10.9.0.0/16.
	if err := ns.Do(func() error { return iface.SetRoutes(pfxs("10.9.0.0/16", "fd08::/64")) }); err != nil {
		t.Fatal(err)
	}
	routes = ns.MustRun(t, "ip", "route", "show", "dev", name)
	if strings.Contains(routes, "10.8.0.0/16") || !strings.Contains(routes, "10.9.0.0/16") {
		t.Errorf("after SetRoutes:\n%s", routes)
	}
	if err := ns.Do(iface.Down); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustRun(t, "ip", "-o", "addr", "show", "dev", name); strings.Contains(out, "10.7.0.2") || strings.Contains(out, "fd07::2") {
		t.Errorf("addresses left after Down:\n%s", out)
	}
	if out := ns.MustRun(t, "ip", "route", "show", "dev", name) + ns.MustRun(t, "ip", "-6", "route", "show", "dev", name); strings.Contains(out, "10.9") || strings.Contains(out, "fd08") {
		t.Errorf("routes left after Down:\n%s", out)
	}
	// Down after the device is gone is fine (the tunnel closed it first).
	if err := ns.Do(func() (err error) { iface, err = Up(cfg, quiet()); return err }); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if err := ns.Do(iface.Down); err != nil {
		t.Errorf("Down on a removed device: %v", err)
	}
}

func TestUpRefusesRouteLoop(t *testing.T) {
	_, err := Up(Config{Name: "x", Routes: pfxs("128.0.0.0/1"), Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}}, quiet())
	if !errors.Is(err, ErrRouteLoop) {
		t.Fatalf("error %v, want ErrRouteLoop", err)
	}
}
