package dns

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeguard/cmd/headless-client/dns/resolvconftest"
	"pipeguard/cmd/headless-client/safedir"
)

// otherUID stands for the service user: a uid no account uses.
const otherUID = 64000

// requireRoot skips a test that chowns files to another uid, unless
// CI=true, where it must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: this test must run as root")
	}
	t.Skip("needs root (to chown to another uid)")
}

// plant writes files into dir/dns, as JSON, then gives the state
// directory, dns/ and the files to owner.
func plant(t *testing.T, state string, owner int, files map[string]any) {
	t.Helper()
	dir := filepath.Join(state, RecordDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range files {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, name), owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, state} {
		if err := os.Chown(d, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
}

// victim is a root-owned 0644 file outside the state directory, which a
// planted record names.
func victim(t *testing.T) (path, content string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "victim")
	content = "root's own file\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, content
}

// TestPlantedEtcResolvConfState: the shared state and a claim, planted
// so that a crash restore would write "original" into a root-owned file
// that holds what the state calls "written". A start recovers the
// interface (whatever its mode) and may use etc-resolv-conf itself:
// neither writes the file, in a directory of another uid (refused
// outright) or in root's own (refused because the state names another
// file than this mode's).
func TestPlantedEtcResolvConfState(t *testing.T) {
	requireRoot(t)
	for _, owner := range []int{otherUID, 0} {
		t.Run(map[int]string{otherUID: "another uid's directory", 0: "root's directory"}[owner], func(t *testing.T) {
			path, content := victim(t)
			sys := etcSystem(t)
			plant(t, sys.StateDir, owner, map[string]any{
				etcStateFile: etcState{Path: path, Original: []byte("pwned\n"), Existed: true, Perm: 0o644, Written: []byte(content),
					Claims: []claim{{Interface: "pg0", Servers: addrs("10.9.9.9"), PID: 1}}},
				recordFile("pg0", EtcResolvConf): record{Mode: EtcResolvConf, Interface: "pg0"},
			})
			_, err := sys.Recover("pg0")
			if err == nil {
				t.Error("Recover acted on the planted state")
			}
			if owner != 0 && !errors.Is(err, safedir.ErrUntrusted) {
				t.Errorf("Recover: %v, want ErrUntrusted", err)
			}
			m, _ := sys.Mode(EtcResolvConf)
			if a, err := sys.Apply(m, Settings{Interface: "pg1", Servers: addrs("10.0.0.1")}); err == nil {
				a.Revert()
				t.Error("Apply went on over the planted state")
			}
			if got := read(t, path); got != content {
				t.Errorf("the victim was written: %q", got)
			}
			if got := read(t, sys.ResolvConf); got != orig {
				t.Errorf("resolv.conf changed: %q", got)
			}
		})
	}
}

// TestPlantedResolvconfRecord: a resolvconf record whose name is a path
// would have root run `resolvconf -d ../../../x -f`, and openresolv
// deletes that path. Neither in another uid's directory nor in root's
// is resolvconf called with it.
func TestPlantedResolvconfRecord(t *testing.T) {
	requireRoot(t)
	for _, owner := range []int{otherUID, 0} {
		t.Run(map[int]string{otherUID: "another uid's directory", 0: "root's directory"}[owner], func(t *testing.T) {
			path, content := victim(t)
			fake := resolvconftest.NewFake(t)
			sys := &System{StateDir: filepath.Join(t.TempDir(), "state"), ResolvconfCmd: []string{fake.Path}}
			plant(t, sys.StateDir, owner, map[string]any{
				recordFile("pg0", Resolvconf): record{Mode: Resolvconf, Interface: "pg0", Name: "../../../" + path},
			})
			if _, err := sys.Recover("pg0"); err == nil {
				t.Error("Recover acted on the planted record")
			}
			if calls := fake.Calls(t); calls != "" {
				t.Errorf("resolvconf was called:\n%s", calls)
			}
			if got := read(t, path); got != content {
				t.Errorf("the victim changed: %q", got)
			}
		})
	}
}

// TestRecordCheck: what a record read back may say.
func TestRecordCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  record
		ok   bool
	}{
		{"resolvconf", record{Mode: Resolvconf, Interface: "pg0", Name: "pg0"}, true},
		{"resolvconf with Debian's prefix", record{Mode: Resolvconf, Interface: "pg0", Name: "tun.pg0"}, true},
		{"resolved", record{Mode: SystemdResolved, Interface: "pg0", Ifindex: 7}, true},
		{"etc-resolv-conf", record{Mode: EtcResolvConf, Interface: "pg0"}, true},
		{"another interface", record{Mode: Resolvconf, Interface: "pg1", Name: "pg1"}, false},
		{"another mode", record{Mode: SystemdResolved, Interface: "pg0"}, false},
		{"a path", record{Mode: Resolvconf, Interface: "pg0", Name: "../../../pg0"}, false},
		{"an absolute path", record{Mode: Resolvconf, Interface: "pg0", Name: "/etc/pg0"}, false},
		{"another name", record{Mode: Resolvconf, Interface: "pg0", Name: "eth0"}, false},
		{"an option", record{Mode: Resolvconf, Interface: "pg0", Name: "-x pg0"}, false},
		{"an option as a prefix", record{Mode: Resolvconf, Interface: "pg0", Name: "-x.pg0"}, false},
		{"a name in another mode", record{Mode: EtcResolvConf, Interface: "pg0", Name: "pg0"}, false},
		{"a negative index", record{Mode: SystemdResolved, Interface: "pg0", Ifindex: -1}, false},
		{"an index in another mode", record{Mode: Resolvconf, Interface: "pg0", Ifindex: 7}, false},
	} {
		mode := Resolvconf
		if tc.name == "resolved" || tc.name == "a negative index" {
			mode = SystemdResolved
		}
		if tc.name == "etc-resolv-conf" || tc.name == "a name in another mode" {
			mode = EtcResolvConf
		}
		if err := tc.rec.check("pg0", mode); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if err := (&record{Mode: Resolvconf, Interface: "a/b"}).check("a/b", Resolvconf); err == nil {
		t.Error("an interface name with a slash passed")
	}
	st := etcState{Path: "/etc/resolv.conf", Perm: 0o644, Claims: []claim{{Interface: "pg0"}}}
	if err := st.check("/etc/resolv.conf"); err != nil {
		t.Errorf("etc state: %v", err)
	}
	for _, bad := range []etcState{
		{Path: "/etc/shadow"},
		{Path: "/etc/resolv.conf", Perm: os.ModeSetuid | 0o755},
		{Path: "/etc/resolv.conf", Claims: []claim{{Interface: "../x"}}},
	} {
		if err := bad.check("/etc/resolv.conf"); err == nil {
			t.Errorf("etc state %+v passed", bad)
		}
	}
}

// FuzzRecordCheck feeds arbitrary records to what a start reads back:
// nothing panics, and a resolvconf name it accepts is the interface's
// own, with at most a prefix of letters, digits and '-' and a dot: no
// path, no option.
func FuzzRecordCheck(f *testing.F) {
	f.Add([]byte(`{"mode":"resolvconf","interface":"pg0","name":"tun.pg0"}`), Resolvconf)
	f.Add([]byte(`{"mode":"resolvconf","interface":"pg0","name":"../../../x"}`), Resolvconf)
	f.Add([]byte(`{"mode":"systemd-resolved","interface":"pg0","ifindex":7}`), SystemdResolved)
	f.Add([]byte(`{"mode":"etc-resolv-conf","interface":"pg0"}`), EtcResolvConf)
	f.Add([]byte(`{"mode":"resolvconf","interface":"pg0","name":"-x.pg0"}`), Resolvconf)
	f.Fuzz(func(t *testing.T, b []byte, mode string) {
		var r record
		if json.Unmarshal(b, &r) != nil || r.check("pg0", mode) != nil {
			return
		}
		if r.Interface != "pg0" || r.Mode != mode {
			t.Fatalf("accepted %+v for mode %q", r, mode)
		}
		if r.Name != "" && r.Name != "pg0" && !resolvconfPrefixName.MatchString(strings.TrimSuffix(r.Name, "pg0")) ||
			strings.ContainsAny(r.Name, "/ ") || strings.HasPrefix(r.Name, "-") {
			t.Fatalf("accepted resolvconf name %q", r.Name)
		}
	})
}
