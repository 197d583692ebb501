package dns

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

const orig = "# the system's own\nnameserver 192.0.2.53\noptions edns0\n"

// etcSystem is a System whose resolv.conf is a temporary file holding
// orig.
func etcSystem(t *testing.T) *System {
	t.Helper()
	dir := t.TempDir()
	sys := &System{StateDir: filepath.Join(dir, "state"), ResolvConf: filepath.Join(dir, "resolv.conf")}
	if err := os.WriteFile(sys.ResolvConf, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	return sys
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func nameservers(conf string) []string {
	var out []string
	for _, l := range strings.Split(conf, "\n") {
		if s, ok := strings.CutPrefix(l, "nameserver "); ok {
			out = append(out, s)
		}
	}
	return out
}

func mustApply(t *testing.T, sys *System, mode string, s Settings) *Applied {
	t.Helper()
	m, err := sys.Mode(mode)
	if err != nil {
		t.Fatal(err)
	}
	a, err := sys.Apply(m, s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// assertNoState checks that nothing is left in the state directory's
// dns folder but the lock file.
func assertNoState(t *testing.T, sys *System) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(sys.StateDir, RecordDir))
	for _, e := range ents {
		if e.Name() != "etc-resolv-conf.lock" {
			t.Errorf("left in %s: %s", filepath.Join(sys.StateDir, RecordDir), e.Name())
		}
	}
}

// TestEtcResolvConfTunnelsInAnyOrder: two tunnels
// writing resolv.conf, stopped in either order, leave the original, and
// while one runs the file names its servers.
func TestEtcResolvConfTunnelsInAnyOrder(t *testing.T) {
	for _, aFirst := range []bool{true, false} {
		sys := etcSystem(t)
		a := mustApply(t, sys, EtcResolvConf, Settings{Interface: "pgA", Servers: addrs("10.0.0.1"), Search: []string{"a.example"}})
		if got := nameservers(read(t, sys.ResolvConf)); !slices.Equal(got, []string{"10.0.0.1"}) {
			t.Fatalf("A up: %v", got)
		}
		b := mustApply(t, sys, EtcResolvConf, Settings{Interface: "pgB", Servers: addrs("10.1.0.1", "fd01::1")})
		conf := read(t, sys.ResolvConf)
		if got := nameservers(conf); !slices.Equal(got, []string{"10.1.0.1", "fd01::1", "10.0.0.1"}) {
			t.Errorf("A and B up: servers %v, want B's first", got)
		}
		if !strings.Contains(conf, "search a.example\n") {
			t.Errorf("A and B up: A's search domain lost:\n%s", conf)
		}
		first, second, left := a, b, "10.1.0.1"
		if !aFirst {
			first, second, left = b, a, "10.0.0.1"
		}
		if err := first.Revert(); err != nil {
			t.Fatal(err)
		}
		if got := nameservers(read(t, sys.ResolvConf)); got[0] != left || len(got) > 2 {
			t.Errorf("one stopped: servers %v, want only the other's (%s)", got, left)
		}
		if err := second.Revert(); err != nil {
			t.Fatal(err)
		}
		if got := read(t, sys.ResolvConf); got != orig {
			t.Errorf("A first %v, both stopped: resolv.conf\n%s\nwant the original", aFirst, got)
		}
		if err := second.Revert(); err != nil {
			t.Errorf("second Revert: %v", err)
		}
		assertNoState(t, sys)
	}
}

// TestRecoverAfterCrash: a run that
// never reverted is undone by the next start of its interface, which
// calls Recover whatever mode it uses.
func TestRecoverAfterCrash(t *testing.T) {
	sys := etcSystem(t)
	mustApply(t, sys, EtcResolvConf, Settings{Interface: "pg0", Servers: addrs("10.0.0.1")}) // and crash
	// Another tunnel starts meanwhile: the crashed one is still "alive"
	// (it is this process), so its servers stay.
	b := mustApply(t, sys, EtcResolvConf, Settings{Interface: "pg1", Servers: addrs("10.1.0.1")})
	restart := &System{StateDir: sys.StateDir, ResolvConf: sys.ResolvConf}
	undone, err := restart.Recover("pg0")
	if err != nil || !slices.Equal(undone, []string{EtcResolvConf}) {
		t.Fatalf("Recover: %v, %v", undone, err)
	}
	if got := nameservers(read(t, sys.ResolvConf)); !slices.Equal(got, []string{"10.1.0.1"}) {
		t.Errorf("after recovery of pg0 with pg1 up: %v", got)
	}
	if err := b.Revert(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, sys.ResolvConf); got != orig {
		t.Errorf("after both: %q", got)
	}
	if undone, err := restart.Recover("pg0"); err != nil || len(undone) != 0 {
		t.Errorf("second Recover: %v, %v", undone, err)
	}
	assertNoState(t, sys)
}

// deadPID is the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestEtcResolvConfDropsDeadClaims: a tunnel killed and never restarted
// does not keep its servers once another tunnel starts and stops.
func TestEtcResolvConfDropsDeadClaims(t *testing.T) {
	sys := etcSystem(t)
	m := &etcResolvConf{sys: sys}
	if err := m.apply(Settings{Interface: "gone", Servers: addrs("10.9.9.9")}, nil); err != nil {
		t.Fatal(err)
	}
	pid := deadPID(t)
	if err := m.locked(func(st *etcState) error { st.Claims[0].PID = pid; return nil }); err != nil {
		t.Fatal(err)
	}
	b := mustApply(t, sys, EtcResolvConf, Settings{Interface: "pg1", Servers: addrs("10.1.0.1")})
	if got := nameservers(read(t, sys.ResolvConf)); !slices.Equal(got, []string{"10.1.0.1"}) {
		t.Errorf("the dead tunnel's server is still named: %v", got)
	}
	if err := b.Revert(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, sys.ResolvConf); got != orig {
		t.Errorf("after stop: %q, want the original", got)
	}
}

// TestEtcResolvConfChangedMeanwhile: a file another program rewrote
// while the tunnel ran is left as it is.
func TestEtcResolvConfChangedMeanwhile(t *testing.T) {
	sys := etcSystem(t)
	a := mustApply(t, sys, EtcResolvConf, Settings{Interface: "pg0", Servers: addrs("10.0.0.1")})
	const dhcp = "nameserver 198.51.100.1\n"
	os.WriteFile(sys.ResolvConf, []byte(dhcp), 0o644)
	if err := a.Revert(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, sys.ResolvConf); got != dhcp {
		t.Errorf("after stop: %q, want the other program's %q", got, dhcp)
	}
	assertNoState(t, sys)
}

// TestEtcResolvConfNoOriginal: a system without resolv.conf has none
// again after the tunnel, and the mode keeps the original's permissions.
func TestEtcResolvConfNoOriginal(t *testing.T) {
	sys := etcSystem(t)
	os.Remove(sys.ResolvConf)
	a := mustApply(t, sys, EtcResolvConf, Settings{Interface: "pg0", Servers: addrs("10.0.0.1")})
	if got := nameservers(read(t, sys.ResolvConf)); len(got) != 1 {
		t.Errorf("up: %v", got)
	}
	if err := a.Revert(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sys.ResolvConf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resolv.conf left behind: %v", err)
	}

	os.WriteFile(sys.ResolvConf, []byte(orig), 0o640)
	os.Chmod(sys.ResolvConf, 0o640)
	a = mustApply(t, sys, EtcResolvConf, Settings{Interface: "pg0", Servers: addrs("10.0.0.1")})
	a.Revert()
	if fi, _ := os.Stat(sys.ResolvConf); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}

func TestEtcResolvConfCheck(t *testing.T) {
	sys := etcSystem(t)
	m, _ := sys.Mode(EtcResolvConf)
	if err := m.Check(Settings{}); err != nil {
		t.Errorf("regular file: %v", err)
	}
	link := filepath.Join(t.TempDir(), "resolv.conf")
	os.Symlink("/run/systemd/resolve/stub-resolv.conf", link)
	sys.ResolvConf = link
	if err := m.Check(Settings{}); !errors.Is(err, ErrPrereq) || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: %v", err)
	}
	if _, err := sys.Apply(m, Settings{Interface: "pg0", Servers: addrs("10.0.0.1")}); !errors.Is(err, ErrPrereq) {
		t.Errorf("Apply on a symlink: %v", err)
	}
	if target, _ := os.Readlink(link); target != "/run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("the symlink was changed: %q", target)
	}
}

// TestLegacyBackup: the backup an earlier version kept is put back by
// the next start, if the file is still that version's.
func TestLegacyBackup(t *testing.T) {
	sys := etcSystem(t)
	os.MkdirAll(sys.StateDir, 0o700)
	backup := filepath.Join(sys.StateDir, "resolv.conf.pg0")
	os.WriteFile(backup, []byte(orig), 0o600)
	os.WriteFile(sys.ResolvConf, []byte("# Written by pipeguard-headless-client for pg0; restored when it stops.\nnameserver 10.0.0.1\n"), 0o644)
	if undone, err := sys.Recover("pg0"); err != nil || len(undone) != 1 {
		t.Fatalf("Recover: %v %v", undone, err)
	}
	if got := read(t, sys.ResolvConf); got != orig {
		t.Errorf("after recovery: %q", got)
	}
	if _, err := os.Stat(backup); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy backup left: %v", err)
	}
}

func TestNothingToApply(t *testing.T) {
	sys := etcSystem(t)
	for _, mode := range []string{Disabled, EtcResolvConf, Resolvconf, SystemdResolved} {
		m, err := sys.Mode(mode)
		if err != nil {
			t.Fatal(err)
		}
		a, err := sys.Apply(m, Settings{Interface: "pg0", Search: []string{"only.search"}})
		if a != nil || err != nil {
			t.Errorf("%s without servers: %v, %v", mode, a, err)
		}
		if err := a.Revert(); err != nil {
			t.Errorf("nil Revert: %v", err)
		}
	}
	if got := read(t, sys.ResolvConf); got != orig {
		t.Errorf("resolv.conf changed: %q", got)
	}
	assertNoState(t, sys)
	if _, err := sys.Mode("bind"); !errors.Is(err, ErrMode) {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestMain checks that no test leaves a goroutine behind: every bus
// connection is closed (godbus runs goroutines per connection).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
