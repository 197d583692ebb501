package ifsetup

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeguard/cmd/internal/netnstest"
	"pipeguard/tunio"
)

// failLab is a namespace whose main table has default routes of both
// families over a veth: without the tunnel, everything leaves there.
type failLab struct {
	ns    *netnstest.NS
	veth  string
	state string // the state file
}

func newFailLab(t *testing.T) *failLab {
	t.Helper()
	ns, far := netnstest.New(t), netnstest.New(t)
	veth, _ := netnstest.Link(t, ns, far, netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24"))
	ns.MustRun(t, "ip", "addr", "add", "fd99::1/64", "dev", veth, "nodad")
	ns.MustRun(t, "ip", "route", "add", "default", "via", "10.99.0.2")
	ns.MustRun(t, "ip", "-6", "route", "add", "default", "via", "fd99::2")
	return &failLab{ns: ns, veth: veth, state: filepath.Join(t.TempDir(), "rules.json")}
}

// via is where `ip route get` sends a packet to dst: "dev NAME", or
// "unreachable".
func (l *failLab) via(t *testing.T, dst string) string {
	t.Helper()
	out, err := l.ns.Run("ip", "route", "get", dst)
	switch {
	case err != nil && (strings.Contains(out, "No route to host") || strings.Contains(out, "Network is unreachable")):
		return "unreachable"
	case err != nil:
		t.Fatalf("ip route get %s: %v\n%s", dst, err, out)
	}
	if strings.HasPrefix(out, "unreachable") {
		return "unreachable"
	}
	f := strings.Fields(out)
	for k := range f[:len(f)-1] {
		if f[k] == "dev" {
			return "dev " + f[k+1]
		}
	}
	t.Fatalf("ip route get %s: no dev:\n%s", dst, out)
	return ""
}

// expectVia checks where both families' outside addresses go.
func (l *failLab) expectVia(t *testing.T, when, v4, v6 string) {
	t.Helper()
	if got := l.via(t, "198.51.100.7"); got != v4 {
		t.Errorf("%s: IPv4 goes %s, want %s", when, got, v4)
	}
	if got := l.via(t, "2001:db8:ff::7"); got != v6 {
		t.Errorf("%s: IPv6 goes %s, want %s", when, got, v6)
	}
}

// TestFailClosed: a full tunnel's table holds an unreachable default
// route of each family behind the interface's. Traffic goes through the
// interface while it is up, is unreachable while it is down, after it is
// gone and after Fail (the rules and routes stay, recorded), and leaves by
// the main table again after Cleanup, or after Down.
func TestFailClosed(t *testing.T) {
	netnstest.RequireRoot(t)
	l := newFailLab(t)
	out := "dev " + l.veth
	l.expectVia(t, "before", out, out)
	rulesBefore := rulesOf(t, l.ns)
	name, dev := tun(t, l.ns)
	var logs bytes.Buffer
	cfg := Config{Name: name, MTU: 1280, Addresses: pfxs("10.7.0.2/24", "fd07::2/64"), Routes: pfxs("0.0.0.0/0", "::/0"), StateFile: l.state}
	var i *Interface
	if err := l.ns.Do(func() (err error) { i, err = Up(cfg, slog.New(slog.NewTextHandler(&logs, nil))); return err }); err != nil {
		t.Fatal(err)
	}
	table := routesOf(t, l.ns, "51820")
	if strings.Count(table, "unreachable default ") != 2 || strings.Count(table, "metric 4278198272") != 2 {
		t.Errorf("table 51820 lacks the unreachable routes:\n%s", table)
	}
	l.expectVia(t, "up", "dev "+name, "dev "+name)
	l.ns.MustRun(t, "ip", "link", "set", name, "down")
	l.expectVia(t, "link down", "unreachable", "unreachable")
	l.ns.MustRun(t, "ip", "link", "set", name, "up")
	if err := l.ns.Do(i.Restore); err != nil {
		t.Fatal(err)
	}
	l.expectVia(t, "link up again", "dev "+name, "dev "+name)

	dev.Close() // as the tunnel does when its interface is deleted or it stops
	l.expectVia(t, "device gone", "unreachable", "unreachable")
	var kept bool
	if err := l.ns.Do(func() (err error) { kept, err = i.Fail(); return err }); err != nil || !kept {
		t.Fatalf("Fail: kept %v, %v", kept, err)
	}
	l.expectVia(t, "after Fail", "unreachable", "unreachable")
	if !strings.Contains(logs.String(), "the full tunnel stays failed closed") {
		t.Errorf("Fail does not say so:\n%s", logs.String())
	}
	b, err := os.ReadFile(l.state)
	if err != nil || !strings.Contains(string(b), `"routes"`) {
		t.Errorf("state file after Fail: %v\n%s", err, b)
	}

	var removed []string
	if err := l.ns.Do(func() (err error) { removed, err = Cleanup(l.state, name); return err }); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 6 {
		t.Errorf("Cleanup removed %q, want 4 rules and 2 routes", removed)
	}
	l.expectVia(t, "after Cleanup", out, out)
	if got := rulesOf(t, l.ns); got != rulesBefore {
		t.Errorf("rules after Cleanup:\n%s\nwant\n%s", got, rulesBefore)
	}
	if _, err := os.Stat(l.state); !os.IsNotExist(err) {
		t.Errorf("state file after Cleanup: %v", err)
	}
	if removed, err := Cleanup(l.state, name); err != nil || removed != nil {
		t.Errorf("Cleanup again: %q, %v", removed, err)
	}
}

// TestFailClosedModes: Down restores normal routing; --fail-open adds no
// unreachable route (the device gone, traffic leaves by the main table,
// as with wg-quick); a one-family tunnel blocks the other family only
// when asked to, and then with the unreachable route alone.
func TestFailClosedModes(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name           string
		cfg            Config
		up, gone, down [2]string // IPv4 and IPv6: where they go; "dev" is the tunnel, "out" the veth
		unreachables   int
	}{
		{"fail closed", Config{Routes: pfxs("0.0.0.0/0", "::/0")}, [2]string{"dev", "dev"}, [2]string{"unreachable", "unreachable"}, [2]string{"out", "out"}, 2},
		{"fail open", Config{Routes: pfxs("0.0.0.0/0", "::/0"), FailOpen: true}, [2]string{"dev", "dev"}, [2]string{"out", "out"}, [2]string{"out", "out"}, 0},
		{"IPv4 only", Config{Routes: pfxs("0.0.0.0/0")}, [2]string{"dev", "out"}, [2]string{"unreachable", "out"}, [2]string{"out", "out"}, 1},
		{"IPv4 only, blocking IPv6", Config{Routes: pfxs("0.0.0.0/0"), BlockUntunneled: true}, [2]string{"dev", "unreachable"}, [2]string{"unreachable", "unreachable"}, [2]string{"out", "out"}, 2},
		{"IPv6 only, blocking IPv4", Config{Routes: pfxs("::/0"), BlockUntunneled: true}, [2]string{"unreachable", "dev"}, [2]string{"unreachable", "unreachable"}, [2]string{"out", "out"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newFailLab(t)
			name, dev := tun(t, l.ns)
			where := func(w [2]string) (string, string) {
				m := map[string]string{"dev": "dev " + name, "out": "dev " + l.veth, "unreachable": "unreachable"}
				return m[w[0]], m[w[1]]
			}
			cfg := tc.cfg
			cfg.Name, cfg.MTU, cfg.Addresses, cfg.StateFile = name, 1280, pfxs("10.7.0.2/24", "fd07::2/64"), l.state
			i, err := up(l.ns, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(routesOf(t, l.ns, "51820"), "unreachable default"); n != tc.unreachables {
				t.Errorf("%d unreachable routes, want %d:\n%s", n, tc.unreachables, routesOf(t, l.ns, "51820"))
			}
			v4, v6 := where(tc.up)
			l.expectVia(t, "up", v4, v6)
			dev.Close()
			v4, v6 = where(tc.gone)
			l.expectVia(t, "device gone", v4, v6)
			if err := l.ns.Do(i.Down); err != nil {
				t.Fatal(err)
			}
			v4, v6 = where(tc.down)
			l.expectVia(t, "after Down", v4, v6)
			if got := routesOf(t, l.ns, "51820"); got != "" {
				t.Errorf("table 51820 after Down:\n%s", got)
			}
		})
	}
	_, err := Prepare(Config{Name: "x", Routes: pfxs("0.0.0.0/0"), FailOpen: true, BlockUntunneled: true}, quiet())
	if err == nil || !strings.Contains(err.Error(), "cannot go with fail-open") {
		t.Errorf("fail open and blocking: %v", err)
	}
}

// TestFailClosedRestart: a start after a crash takes over the crashed
// run's rules and unreachable routes (same table; they are never
// removed, so there is no moment without them), says so, and records
// them as its own. A start that then fails keeps them; one that found
// nothing leaves nothing.
func TestFailClosedRestart(t *testing.T) {
	netnstest.RequireRoot(t)
	l := newFailLab(t)
	rulesBefore := rulesOf(t, l.ns)
	name, dev := tun(t, l.ns)
	cfg := Config{Name: name, MTU: 1280, Routes: pfxs("0.0.0.0/0", "::/0"), StateFile: l.state}
	if _, err := up(l.ns, cfg); err != nil {
		t.Fatal(err)
	}
	dev.Close() // killed: no Down
	crashed := routesOf(t, l.ns, "51820") + rulesOf(t, l.ns)

	// The restart: Prepare alone, as the client does before it creates
	// the device. Everything is as the crashed run left it.
	var logs bytes.Buffer
	var i *Interface
	if err := l.ns.Do(func() (err error) { i, err = Prepare(cfg, slog.New(slog.NewTextHandler(&logs, nil))); return err }); err != nil {
		t.Fatal(err)
	}
	if got := routesOf(t, l.ns, "51820") + rulesOf(t, l.ns); got != crashed {
		t.Errorf("after the restart's Prepare:\n%s\nwant as the crash left it:\n%s", got, crashed)
	}
	if !strings.Contains(logs.String(), "took over the policy rules and routes a previous run left") || strings.Contains(logs.String(), "removed") {
		t.Errorf("log:\n%s", logs.String())
	}
	// The start fails before the device exists: routing stays failed
	// closed, and recorded.
	if err := l.ns.Do(i.Abort); err != nil {
		t.Fatal(err)
	}
	if got := routesOf(t, l.ns, "51820") + rulesOf(t, l.ns); got != crashed {
		t.Errorf("after a failed restart:\n%s\nwant as the crash left it:\n%s", got, crashed)
	}
	l.expectVia(t, "after a failed restart", "unreachable", "unreachable")

	// A start that works, and Down.
	if err := l.ns.Do(func() (err error) { dev, err = tunio.CreateTUN(name, 1280); return err }); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	i, err := up(l.ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.expectVia(t, "restarted", "dev "+name, "dev "+name)
	if err := l.ns.Do(i.Down); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, l.ns); got != rulesBefore {
		t.Errorf("rules after Down:\n%s\nwant\n%s", got, rulesBefore)
	}

	// A first start that fails leaves nothing.
	if err := l.ns.Do(func() (err error) { i, err = Prepare(cfg, quiet()); return err }); err != nil {
		t.Fatal(err)
	}
	if err := l.ns.Do(i.Abort); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, l.ns); got != rulesBefore || routesOf(t, l.ns, "51820") != "" {
		t.Errorf("after a failed first start:\n%s%s", got, routesOf(t, l.ns, "51820"))
	}
}
