package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeguard/cmd/headless-client/safedir"
)

// otherUID stands for the service user, or any user but the one running:
// a uid no account uses.
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

func TestStateDirFor(t *testing.T) {
	for _, tc := range []struct {
		flag string
		euid int
		want string
	}{
		{"", 0, "/var/lib/pipeguard-root"},
		{"", 999, "/var/lib/pipeguard"},
		{"/srv/pg", 0, "/srv/pg"},
		{"/srv/pg", 999, "/srv/pg"},
	} {
		if got := stateDirFor(tc.flag, tc.euid); got != tc.want {
			t.Errorf("stateDirFor(%q, %d) = %q, want %q", tc.flag, tc.euid, got, tc.want)
		}
	}
}

// TestCheckStateDir refuses, with one line naming the directory, a state
// directory or subdirectory that another uid owns or that others may
// write, and accepts one that does not exist yet.
func TestCheckStateDir(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, state string)
		bad   string // the directory the error names; "" if accepted
	}{
		{"missing", func(*testing.T, string) {}, ""},
		{"ours", func(t *testing.T, state string) { mkdirs(t, state, "config", "dns") }, ""},
		{"another uid's", func(t *testing.T, state string) {
			mkdirs(t, state)
			chown(t, state, otherUID)
		}, "."},
		{"group-writable", func(t *testing.T, state string) {
			mkdirs(t, state)
			os.Chmod(state, 0o770)
		}, "."},
		{"dns another uid's", func(t *testing.T, state string) {
			mkdirs(t, state, "dns")
			chown(t, filepath.Join(state, "dns"), otherUID)
		}, "dns"},
		{"config another uid's", func(t *testing.T, state string) {
			mkdirs(t, state, "config")
			chown(t, filepath.Join(state, "config"), otherUID)
		}, "config"},
		{"config a link", func(t *testing.T, state string) {
			mkdirs(t, state)
			os.Symlink("/etc", filepath.Join(state, "config"))
		}, "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			tc.setup(t, state)
			err := checkStateDir(state)
			if (err == nil) != (tc.bad == "") {
				t.Fatalf("checkStateDir: %v, want refused %v", err, tc.bad != "")
			}
			if err == nil {
				return
			}
			want := filepath.Join(state, tc.bad)
			msg := err.Error()
			if !errors.Is(err, safedir.ErrUntrusted) || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, want)
			}
		})
	}
}

func mkdirs(t *testing.T, dir string, subs ...string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if err := os.Mkdir(filepath.Join(dir, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceIDPlanted: a device id file that is a link to a root-only
// secret, in a state directory that another uid prepared (or that root
// took over with the link still in it), is never read: the lookup fails,
// and neither its error nor anything else holds the secret.
func TestDeviceIDPlanted(t *testing.T) {
	requireRoot(t)
	const secret = "8Jwawm4iSECRETSECRETSECRETSECRETSECRETSECR="
	for _, tc := range []struct {
		name  string
		owner int // of the state directory and config/
		file  int // of the planted link or file
		link  bool
	}{
		{"another uid's directory", otherUID, otherUID, true},
		{"root's directory, a link left in it", 0, otherUID, true},
		{"root's directory, another uid's file", 0, otherUID, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			key := filepath.Join(base, "private.key")
			if err := os.WriteFile(key, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(base, "state")
			mkdirs(t, state, "config")
			id := deviceIDFile(state)
			if tc.link {
				if err := os.Symlink(key, id); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(id, []byte("planted-id\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			chown(t, id, tc.file)
			chown(t, filepath.Join(state, "config"), tc.owner)
			chown(t, state, tc.owner)

			p, err := lookupDeviceID("", state)
			if err == nil {
				t.Fatalf("lookup read the planted file: id %q from %s", p.id, p.source)
			}
			if !errors.Is(err, errDeviceID) || !errors.Is(err, safedir.ErrUntrusted) || strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q: want errDeviceID and ErrUntrusted, without the secret", err)
			}
			if b, _ := os.ReadFile(key); string(b) != secret+"\n" {
				t.Errorf("the secret changed: %q", b)
			}
		})
	}
}
