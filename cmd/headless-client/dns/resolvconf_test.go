package dns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeguard/cmd/headless-client/dns/resolvconftest"
	"pipeguard/cmd/internal/netnstest"
)

// TestResolvconfCallsAsWGQuick checks the exact calls against a recording
// fake: wg-quick's `resolvconf -a NAME -m 0 -x` with nameserver and
// search lines on stdin, and `resolvconf -d NAME -f`; NAME has Debian's
// interface-order prefix when that file names one, and a crashed run is
// undone under the name it used, whatever the file says by then.
func TestResolvconfCallsAsWGQuick(t *testing.T) {
	for _, tc := range []struct {
		order string // interface-order content; "" for no file (openresolv)
		name  string
	}{
		{"", "pg0"},
		// Debian resolvconf's own file: the first NAME* line is tun*.
		{"# interface-order(5)\nlo.inet6\nlo.inet\nlo.@(dnsmasq|pdnsd)\nlo.!(pdns|pdns-recursor)\nlo\ntun*\ntap*\nhso*\nem+([0-9])?(_+([0-9]))*\n", "tun.pg0"},
		{"lo\n  wg*  \ntun*\n", "wg.pg0"},
		{"lo\neth*.*\n", "pg0"},
	} {
		fake := resolvconftest.NewFake(t)
		sys := &System{StateDir: t.TempDir(), ResolvconfCmd: []string{fake.Path}, InterfaceOrder: filepath.Join(t.TempDir(), "interface-order")}
		if tc.order != "" {
			os.WriteFile(sys.InterfaceOrder, []byte(tc.order), 0o644)
		}
		a := mustApply(t, sys, Resolvconf, Settings{Interface: "pg0", Servers: addrs("10.0.0.1", "fd00::1"), Search: []string{"corp.example", "lab.example"}})
		want := "resolvconf -a " + tc.name + " -m 0 -x\n< nameserver 10.0.0.1\n< nameserver fd00::1\n< search corp.example lab.example\n"
		if got := fake.Calls(t); got != want {
			t.Errorf("order %q: up:\n%s\nwant\n%s", tc.order, got, want)
		}
		fake.Reset()
		if err := a.Revert(); err != nil {
			t.Fatal(err)
		}
		if got, want := fake.Calls(t), "resolvconf -d "+tc.name+" -f\n"; got != want {
			t.Errorf("order %q: down: %q, want %q", tc.order, got, want)
		}

		// A crash, then a start with the interface-order file gone.
		fake.Reset()
		mustApply(t, sys, Resolvconf, Settings{Interface: "pg0", Servers: addrs("10.0.0.1")})
		os.Remove(sys.InterfaceOrder)
		fake.Reset()
		if undone, err := sys.Recover("pg0"); err != nil || len(undone) != 1 {
			t.Fatalf("Recover: %v, %v", undone, err)
		}
		if got, want := fake.Calls(t), "resolvconf -d "+tc.name+" -f\n"; got != want {
			t.Errorf("order %q: recovery: %q, want %q", tc.order, got, want)
		}
		assertNoState(t, sys)
	}
}

func TestResolvconfCheck(t *testing.T) {
	sys := &System{StateDir: t.TempDir(), ResolvconfCmd: []string{filepath.Join(t.TempDir(), "no-such-resolvconf")}}
	m, _ := sys.Mode(Resolvconf)
	if err := m.Check(Settings{}); err == nil || !strings.Contains(err.Error(), "no resolvconf program") {
		t.Errorf("Check without the program: %v", err)
	}
}

// origNS is a test namespace's resolv.conf before any tunnel.
const origNS = "# the namespace's own resolv.conf\nnameserver 192.0.2.53\n"

// TestResolvconfOpenresolv runs the real openresolv, confined to a
// namespace: the namespace's resolver shows the tunnel's servers while it
// runs and the old ones after Revert, and a crashed run is undone by
// Recover.
func TestResolvconfOpenresolv(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	or := resolvconftest.NewOpenresolv(t, ns, origNS)
	sys := &System{StateDir: t.TempDir(), ResolvconfCmd: or.Command()}
	s := Settings{Interface: "pg0", Servers: addrs("10.0.0.1", "fd00::1"), Search: []string{"corp.example"}}

	a := mustApply(t, sys, Resolvconf, s)
	conf := or.ResolvConf(t)
	if got := strings.Join(nameservers(conf), " "); got != "10.0.0.1 fd00::1" || !strings.Contains(conf, "search corp.example") {
		t.Errorf("up: resolv.conf\n%s", conf)
	}
	if got := or.Interfaces(t); got != "pg0" {
		t.Errorf("openresolv holds %q, want pg0", got)
	}
	if err := a.Revert(); err != nil {
		t.Fatal(err)
	}
	if got := or.ResolvConf(t); got != origNS {
		t.Errorf("after Revert: resolv.conf\n%s\nwant\n%s", got, origNS)
	}

	mustApply(t, sys, Resolvconf, s) // and crash
	if got := nameservers(or.ResolvConf(t)); len(got) != 2 {
		t.Fatalf("up again: %v", got)
	}
	restart := &System{StateDir: sys.StateDir, ResolvconfCmd: or.Command()}
	if undone, err := restart.Recover("pg0"); err != nil || len(undone) != 1 || undone[0] != Resolvconf {
		t.Fatalf("Recover: %v, %v", undone, err)
	}
	if got := or.ResolvConf(t); got != origNS {
		t.Errorf("after recovery: resolv.conf\n%s\nwant\n%s", got, origNS)
	}
	if got := or.Interfaces(t); got != "" {
		t.Errorf("openresolv still holds %q", got)
	}
}
