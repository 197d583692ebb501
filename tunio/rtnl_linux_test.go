package tunio

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inNetns runs fn in ns and fails the test on its error.
func inNetns(t *testing.T, ns *netns, fn func() error) {
	t.Helper()
	var err error
	ns.do(func() { err = fn() })
	if err != nil {
		t.Fatal(err)
	}
}

// ipIn runs iproute2 in ns (from the namespace's own thread, so that `ip`
// inherits it) and returns its output.
func ipIn(t *testing.T, ns *netns, args ...string) string {
	t.Helper()
	var out []byte
	var err error
	ns.do(func() {
		// A child started from this locked thread inherits its namespace.
		runtime.LockOSThread()
		out, err = exec.Command("ip", args...).CombinedOutput()
	})
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRTNLRoutesAndRules checks routes in a table of their own, the route
// dump with its devices and gateways, and wg-quick's two policy rules,
// against iproute2's view.
func TestRTNLRoutesAndRules(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	name := fmt.Sprintf("pgrt%d", rand.Uint32N(1e6))
	var r *RTNL
	var dev Device
	inNetns(t, ns, func() (err error) {
		if r, err = OpenRTNL(); err != nil {
			return err
		}
		dev, err = CreateTUN(name, 1280)
		return err
	})
	t.Cleanup(func() { dev.Close(); r.Close() })
	// r works from any goroutine: it stays in the namespace.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.SetLinkUp(name))
	must(r.AddAddress(name, netip.MustParsePrefix("10.66.0.1/24")))
	must(r.AddAddress(name, netip.MustParsePrefix("fd66::1/64")))
	// A veth pair (no dummy module everywhere) with both ends here.
	ipIn(t, ns, "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1")
	ipIn(t, ns, "link", "set", "dummy0", "up")
	ipIn(t, ns, "link", "set", "dummy1", "up")
	ipIn(t, ns, "addr", "add", "192.0.2.1/24", "dev", "dummy0")
	ipIn(t, ns, "route", "add", "10.78.0.0/24", "via", "192.0.2.254", "dev", "dummy0")

	const table = 51820
	if used, err := r.TableInUse(table); err != nil || used {
		t.Fatalf("TableInUse before = %v, %v", used, err)
	}
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		must(r.AddRoute(name, netip.MustParsePrefix(p), table))
	}
	if used, err := r.TableInUse(table); err != nil || !used {
		t.Fatalf("TableInUse after = %v, %v", used, err)
	}
	if out := ipIn(t, ns, "-4", "route", "show", "table", fmt.Sprint(table)); !strings.Contains(out, "default dev "+name) {
		t.Errorf("table %d (IPv4):\n%s", table, out)
	}
	if out := ipIn(t, ns, "-6", "route", "show", "table", fmt.Sprint(table)); !strings.Contains(out, "default dev "+name) {
		t.Errorf("table %d (IPv6):\n%s", table, out)
	}
	main, err := r.Routes(MainTable)
	must(err)
	var found []string
	for _, rt := range main {
		found = append(found, rt.String())
	}
	for _, want := range []string{
		"10.78.0.0/24 via 192.0.2.254 dev dummy0 table main proto boot metric 0",
		"10.66.0.0/24 dev " + name + " table main proto kernel metric 0",
	} {
		if !slices.Contains(found, want) {
			t.Errorf("main table lacks %q: %q", want, found)
		}
	}
	tbl, err := r.Routes(table)
	must(err)
	if len(tbl) != 2 || tbl[0].Dst.Bits() != 0 || tbl[0].Dev != name || tbl[1].Dst.Bits() != 0 {
		t.Errorf("table %d: %v", table, tbl)
	}

	rules := []Rule{
		{Table: table, Mark: table, Invert: true},
		{Table: MainTable, SuppressDefault: true},
		{V6: true, Table: table, Mark: table, Invert: true},
		{V6: true, Table: MainTable, SuppressDefault: true},
	}
	for _, ru := range rules {
		must(r.AddRule(ru))
	}
	// A second tunnel's identical rule coexists with the first.
	must(r.AddRule(rules[1]))
	v4 := ipIn(t, ns, "-4", "rule", "show")
	v6 := ipIn(t, ns, "-6", "rule", "show")
	for _, c := range []struct{ out, want string }{
		{v4, "not from all fwmark 0xca6c lookup 51820"},
		{v4, "from all lookup main suppress_prefixlength 0"},
		{v6, "not from all fwmark 0xca6c lookup 51820"},
		{v6, "from all lookup main suppress_prefixlength 0"},
	} {
		if !strings.Contains(c.out, c.want) {
			t.Errorf("rules lack %q:\n%s", c.want, c.out)
		}
	}
	if n := strings.Count(v4, "suppress_prefixlength 0"); n != 2 {
		t.Errorf("%d suppress rules, want 2:\n%s", n, v4)
	}
	listed, err := r.Rules(false)
	must(err)
	if !slices.ContainsFunc(listed, func(ru Rule) bool { return ru.Invert && ru.Mark == table && ru.Table == table }) {
		t.Errorf("Rules(false) = %v", listed)
	}
	for _, ru := range rules {
		must(r.DelRule(ru))
	}
	if err := r.DelRule(rules[0]); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("deleting a rule twice: %v, want ENOENT", err)
	}
	v4 = ipIn(t, ns, "-4", "rule", "show")
	if strings.Count(v4, "suppress_prefixlength 0") != 1 || strings.Contains(v4, "51820") {
		t.Errorf("after DelRule, one suppress rule should be left and no 51820:\n%s", v4)
	}
	if out := ipIn(t, ns, "-6", "rule", "show"); strings.Contains(out, "51820") || strings.Contains(out, "suppress") {
		t.Errorf("IPv6 rules left:\n%s", out)
	}
	// Unreachable default routes behind the interface's: they need no
	// interface, and survive it.
	const metric = 4278198272
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		must(r.AddUnreachable(netip.MustParsePrefix(p), table, metric))
		if err := r.AddUnreachable(netip.MustParsePrefix(p), table, metric); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("adding %s twice: %v, want EEXIST", p, err)
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		// IPv6 shows it on lo, where the kernel keeps its reject routes.
		if out := ipIn(t, ns, fam, "route", "show", "table", fmt.Sprint(table)); !strings.Contains(out, "unreachable default ") || !strings.Contains(out, " metric 4278198272") {
			t.Errorf("table %d (%s) lacks the unreachable route:\n%s", table, fam, out)
		}
	}
	tbl, err = r.Routes(table)
	must(err)
	unreachables := 0
	for _, rt := range tbl {
		if rt.Type == RouteUnreachable && rt.Metric == metric && rt.Dst.Bits() == 0 {
			unreachables++
		}
	}
	if unreachables != 2 {
		t.Errorf("Routes(%d) shows %d unreachable default routes, want 2: %v", table, unreachables, tbl)
	}
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		must(r.DelUnreachable(netip.MustParsePrefix(p), table, metric))
		if err := r.DelUnreachable(netip.MustParsePrefix(p), table, metric); !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("deleting %s twice: %v, want ESRCH or ENOENT", p, err)
		}
	}
	must(r.DelRoute(name, netip.MustParsePrefix("0.0.0.0/0"), table))
	if err := r.AddRoute("nonexistent0", netip.MustParsePrefix("10.0.0.0/8"), 0); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("AddRoute on a missing interface: %v, want ENODEV", err)
	}
}

// TestLinkEvents follows an MTU change, a bounce and the removal of a TUN
// through link notifications.
func TestLinkEvents(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	name := fmt.Sprintf("pgle%d", rand.Uint32N(1e6))
	var ev *LinkEvents
	var dev Device
	inNetns(t, ns, func() (err error) {
		if ev, err = SubscribeLinks(); err != nil {
			return err
		}
		dev, err = CreateTUN(name, 1280)
		return err
	})
	defer ev.Close()
	events := make(chan LinkEvent, 100)
	go func() {
		defer close(events)
		for {
			es, err := ev.Next()
			if errors.Is(err, ErrClosed) {
				return
			}
			for _, e := range es {
				events <- e
			}
		}
	}()
	wait := func(what string, ok func(LinkEvent) bool) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Name == name && ok(e) {
					return
				}
			case <-timeout:
				t.Fatalf("no event: %s", what)
			}
		}
	}
	ipIn(t, ns, "link", "set", name, "mtu", "1420", "up")
	wait("MTU 1420 and up", func(e LinkEvent) bool { return e.MTU == 1420 && e.Up })
	ipIn(t, ns, "link", "set", name, "down")
	wait("down", func(e LinkEvent) bool { return !e.Up })
	dev.Close()
	wait("deleted", func(e LinkEvent) bool { return e.Deleted })
	ev.Close()
	select {
	case <-events: // drained or closed
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after Close")
	}
}
