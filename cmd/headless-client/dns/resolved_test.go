package dns

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"pipeguard/cmd/headless-client/dns/resolvedtest"
)

// loIndex is the loopback's ifindex: a link that exists in every
// namespace, which resolved mode needs to name.
func loIndex(t *testing.T) int {
	t.Helper()
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	return ifi.Index
}

// TestResolvedCalls checks the exact D-Bus calls, with resolved's
// signatures, against a recording fake on a private bus: per-link
// servers and search domains; for a full tunnel also "~." and the
// default route; RevertLink at stop.
func TestResolvedCalls(t *testing.T) {
	lo := loIndex(t)
	for _, tc := range []struct {
		full bool
		want []string
	}{
		{false, []string{
			fmt.Sprintf("SetLinkDNS ia(iay) %d [(2 10.0.0.1) (2 10.0.0.2) (10 fd00::1)]", lo),
			fmt.Sprintf("SetLinkDomains ia(sb) %d [(corp.example false) (lab.example false)]", lo),
		}},
		{true, []string{
			fmt.Sprintf("SetLinkDNS ia(iay) %d [(2 10.0.0.1) (2 10.0.0.2) (10 fd00::1)]", lo),
			fmt.Sprintf("SetLinkDomains ia(sb) %d [(corp.example false) (lab.example false) (. true)]", lo),
			fmt.Sprintf("SetLinkDefaultRoute ib %d true", lo),
		}},
	} {
		fake := resolvedtest.Start(t)
		sys := &System{StateDir: t.TempDir(), Bus: fake.Dial}
		// An IPv4-mapped address goes as IPv4, as resolved wants it.
		servers := addrs("10.0.0.1", "::ffff:10.0.0.2", "fd00::1")
		a := mustApply(t, sys, SystemdResolved, Settings{Interface: "lo", Servers: servers, Search: []string{"corp.example", "lab.example"}, DefaultRoute: tc.full})
		if got := fake.Calls(); !slices.Equal(got, tc.want) {
			t.Errorf("full %v: up:\n%s\nwant\n%s", tc.full, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
		if err := a.Revert(); err != nil {
			t.Fatal(err)
		}
		if got := fake.Calls()[len(tc.want):]; !slices.Equal(got, []string{fmt.Sprintf("RevertLink i %d", lo)}) {
			t.Errorf("full %v: down: %q", tc.full, got)
		}
		assertNoState(t, sys)
	}
}

// TestResolvedRecover: a crashed run's record is undone with RevertLink
// while its link exists under its name, and with no call once the link
// is gone (resolved forgot it with the link).
func TestResolvedRecover(t *testing.T) {
	lo := loIndex(t)
	fake := resolvedtest.Start(t)
	sys := &System{StateDir: t.TempDir(), Bus: fake.Dial}
	mustApply(t, sys, SystemdResolved, Settings{Interface: "lo", Servers: addrs("10.0.0.1")}) // and crash
	n := len(fake.Calls())
	if undone, err := sys.Recover("lo"); err != nil || !slices.Equal(undone, []string{SystemdResolved}) {
		t.Fatalf("Recover: %v, %v", undone, err)
	}
	if got := fake.Calls()[n:]; !slices.Equal(got, []string{fmt.Sprintf("RevertLink i %d", lo)}) {
		t.Errorf("recovery with the link there: %q", got)
	}

	// A record of a link that is gone: its index now belongs to no link
	// of that name.
	rec := &record{Mode: SystemdResolved, Interface: "pg-gone", Ifindex: lo, sys: sys, file: recordFile("pg-gone", SystemdResolved)}
	if err := rec.save(); err != nil {
		t.Fatal(err)
	}
	n = len(fake.Calls())
	if undone, err := sys.Recover("pg-gone"); err != nil || len(undone) != 1 {
		t.Fatalf("Recover: %v, %v", undone, err)
	}
	if got := fake.Calls()[n:]; len(got) != 0 {
		t.Errorf("calls for a link that is gone: %q", got)
	}
	assertNoState(t, sys)
}

// TestSelect: auto is systemd-resolved when its name is on the bus, and
// disabled when the bus has no resolved or there is no bus.
func TestSelect(t *testing.T) {
	fake := resolvedtest.Start(t)
	noResolved := resolvedtest.NewBus(t)
	noBus := func(...dbus.ConnOption) (*dbus.Conn, error) { return nil, errors.New("no such socket") }
	for _, tc := range []struct {
		bus  BusDialer
		flag string
		want string
		why  string
	}{
		{fake.Dial, Auto, SystemdResolved, "is running"},
		{noResolved.Dial, Auto, Disabled, "org.freedesktop.resolve1 is not on the system bus"},
		{noBus, Auto, Disabled, "no such socket"},
		{noBus, EtcResolvConf, EtcResolvConf, "--dns-control etc-resolv-conf"},
	} {
		sys := &System{StateDir: t.TempDir(), Bus: tc.bus}
		m, why, err := sys.Select(tc.flag)
		if err != nil || m.Name() != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %v (%q), %v; want %s (%q)", tc.flag, m, why, err, tc.want, tc.why)
		}
	}
	sys := &System{StateDir: t.TempDir(), Bus: noResolved.Dial}
	m, _ := sys.Mode(SystemdResolved)
	if err := m.Check(Settings{}); !errors.Is(err, ErrPrereq) {
		t.Errorf("Check without resolved: %v", err)
	}
	if _, _, err := sys.Select("nonsense"); !errors.Is(err, ErrMode) {
		t.Errorf("unknown mode: %v", err)
	}
}
