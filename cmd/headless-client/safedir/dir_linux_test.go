package safedir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// otherUID is a uid no account uses: the "other user" whose directories
// and files a root process must not trust.
const otherUID = 64000

// requireRoot skips a test that must chown files to another uid, unless
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

// tree makes a directory for a test: t.TempDir is root's alone (0700),
// with /tmp, sticky, on the way.
func tree(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func mkdir(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	chmodOwn(t, path, mode, uid)
}

func chmodOwn(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if mode != 0 {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrust runs the rule over directories of each owner and mode, as
// the one asked for and as one on the way to it.
func TestTrust(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name       string
		mode       os.FileMode
		uid        int
		final, way bool // trusted as the directory, as one on the way
		msg        string
	}{
		{"root 0700", 0o700, 0, true, true, ""},
		{"root 0755", 0o755, 0, true, true, ""},
		{"root 0750", 0o750, 0, true, true, ""},
		{"root group-writable", 0o775, 0, false, true, "writable by its group or others"},
		{"root world-writable", 0o777, 0, false, false, "writable by"},
		{"root sticky world-writable", os.ModeSticky | 0o777, 0, false, true, "writable by its group or others"},
		{"other uid 0700", 0o700, otherUID, false, false, "belongs to uid 64000"},
		{"other uid 0755", 0o755, otherUID, false, false, "belongs to uid 64000"},
		{"other uid sticky", os.ModeSticky | 0o777, otherUID, false, false, "belongs to uid 64000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(tree(t), "d")
			mkdir(t, dir, tc.mode, tc.uid)
			d, err := Open(dir)
			if (err == nil) != tc.final {
				t.Errorf("Open: %v, want trusted %v", err, tc.final)
			}
			if err != nil && (!errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), dir)) {
				t.Errorf("Open: error %q, want ErrUntrusted naming %s and %q", err, dir, tc.msg)
			}
			if d != nil {
				d.Close()
			}
			if err := Check(dir); (err == nil) != tc.final {
				t.Errorf("Check: %v, want trusted %v", err, tc.final)
			}
			// On the way: a root 0700 directory inside.
			mkdir(t, filepath.Join(dir, "in"), 0o700, 0)
			d, err = Open(filepath.Join(dir, "in"))
			if (err == nil) != tc.way {
				t.Errorf("Open of a directory inside: %v, want trusted %v", err, tc.way)
			}
			if d != nil {
				d.Close()
			}
			if err := Check(filepath.Join(dir, "in", "missing", "too")); (err == nil) != tc.way {
				t.Errorf("Check of a missing directory inside: %v, want trusted %v", err, tc.way)
			}
		})
	}
}

// TestSubAndMkdirAll: what MkdirAll and Sub create is trusted and has the
// mode asked for; a directory of another uid inside is not.
func TestSubAndMkdirAll(t *testing.T) {
	requireRoot(t)
	base := tree(t)
	path := filepath.Join(base, "a", "b", "state")
	if err := Check(path); err != nil {
		t.Fatalf("Check of a path to be made: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "a")); !os.IsNotExist(err) {
		t.Fatalf("Check created something: %v", err)
	}
	d, err := MkdirAll(path, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Path() != path {
		t.Errorf("Path %s, want %s", d.Path(), path)
	}
	sub, err := d.Sub("dns", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if fi, err := os.Stat(filepath.Join(path, "dns")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dns: %v %v, want mode 0700", fi, err)
	}
	if _, err := d.Sub("missing", 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sub of a missing directory without perm: %v", err)
	}
	mkdir(t, filepath.Join(path, "theirs"), 0o700, otherUID)
	if _, err := d.Sub("theirs", 0o700); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Sub of another uid's directory: %v, want ErrUntrusted", err)
	}
	if err := os.Symlink(base, filepath.Join(path, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sub("link", 0o700); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Sub of a symbolic link: %v, want ErrUntrusted", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x"} {
		if _, err := d.Sub(bad, 0o700); !errors.Is(err, ErrBadName) {
			t.Errorf("Sub(%q): %v, want ErrBadName", bad, err)
		}
	}
}

// TestLinksOnTheWay: links are followed where the rule allows, and the
// directory they lead to is checked as any other.
func TestLinksOnTheWay(t *testing.T) {
	requireRoot(t)
	base := tree(t)
	real := filepath.Join(base, "real")
	mkdir(t, real, 0o700, 0)
	mkdir(t, filepath.Join(real, "state"), 0o700, 0)
	theirs := filepath.Join(base, "theirs")
	mkdir(t, theirs, 0o700, otherUID)
	sticky := filepath.Join(base, "tmp")
	mkdir(t, sticky, os.ModeSticky|0o777, 0)
	for _, tc := range []struct {
		name, link, target string
		uid                int
		open               string // path to open, through the link
		ok                 bool
	}{
		{"absolute", "abs", real, 0, "abs/state", true},
		{"relative", "rel", "real", 0, "rel/state", true},
		{"relative with ..", "dotdot", "./real/../real", 0, "dotdot/state", true},
		{"to another uid's directory", "bad", theirs, 0, "bad", false},
		{"a link owned by another uid, in a root directory", "theirlink", real, otherUID, "theirlink/state", true},
		{"a root link in a sticky directory", "tmp/rootlink", real, 0, "tmp/rootlink/state", true},
		{"another uid's link in a sticky directory", "tmp/theirlink", real, otherUID, "tmp/theirlink/state", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := filepath.Join(base, tc.link)
			if err := os.Symlink(tc.target, link); err != nil {
				t.Fatal(err)
			}
			chmodOwn(t, link, 0, tc.uid)
			d, err := Open(filepath.Join(base, tc.open))
			if (err == nil) != tc.ok {
				t.Fatalf("Open: %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrUntrusted) {
					t.Errorf("error %v, want ErrUntrusted", err)
				}
				return
			}
			defer d.Close()
			if want := filepath.Join(real, "state"); d.Path() != want {
				t.Errorf("Path %s, want %s", d.Path(), want)
			}
		})
	}
	loop := filepath.Join(base, "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(loop); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a link to itself: %v, want ELOOP", err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("a file: %v, want ENOTDIR", err)
	}
}

// TestFiles: files are never reached through a link, must be regular and
// the euid's or root's, and are replaced whole.
func TestFiles(t *testing.T) {
	requireRoot(t)
	base := tree(t)
	d, err := MkdirAll(filepath.Join(base, "state"), 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := func(name string) string { return filepath.Join(d.Path(), name) }
	if err := os.Symlink(victim, in("link")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("link", 100); !errors.Is(err, syscall.ELOOP) || !errors.Is(err, ErrUntrusted) {
		t.Errorf("ReadFile through a link: %v, want ErrUntrusted and ELOOP", err)
	}
	if _, err := d.OpenFile("link", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("OpenFile through a link: %v, want ELOOP", err)
	}
	if err := d.WriteFile("link", []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "secret\n" {
		t.Errorf("WriteFile wrote through the link: victim holds %q", b)
	}
	if fi, err := os.Lstat(in("link")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("WriteFile did not replace the link with a file: %v %v", fi, err)
	}
	if b, err := d.ReadFile("link", 100); err != nil || string(b) != "new\n" {
		t.Errorf("ReadFile after WriteFile: %q %v", b, err)
	}
	if _, err := d.ReadFile("link", 3); err == nil {
		t.Error("ReadFile of a file over the limit succeeded")
	}
	if err := unix.Mkfifo(in("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("fifo", 100); !errors.Is(err, ErrUntrusted) {
		t.Errorf("ReadFile of a FIFO: %v, want ErrUntrusted", err)
	}
	if err := os.WriteFile(in("theirs"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	chmodOwn(t, in("theirs"), 0, otherUID)
	if _, err := d.ReadFile("theirs", 100); !errors.Is(err, ErrUntrusted) {
		t.Errorf("ReadFile of another uid's file: %v, want ErrUntrusted", err)
	}
	if err := os.Symlink(victim, in("link2")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("link2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("Remove of a link removed its target: %v", err)
	}
	if err := d.Remove("link2"); err != nil {
		t.Errorf("Remove of a name already gone: %v", err)
	}
	if err := d.Rename("link", "moved"); err != nil {
		t.Fatal(err)
	}
	names, err := d.Names()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"fifo", "moved", "theirs"}; !slices.Equal(names, want) {
		t.Errorf("Names %q, want %q (no temporary files left)", names, want)
	}
	f, err := d.OpenFile("new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := d.OpenFile("new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("O_EXCL on an existing file: %v", err)
	}
}

// TestOpenatBothWays: openat2 and the O_NOFOLLOW fallback refuse a link
// and open a file alike.
func TestOpenatBothWays(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	for _, try2 := range []bool{true, false} {
		fd, err := openat(dfd, "f", unix.O_RDONLY, 0, try2)
		if err != nil {
			t.Errorf("openat2 %v: f: %v", try2, err)
		} else {
			unix.Close(fd)
		}
		if fd, err := openat(dfd, "l", unix.O_RDONLY, 0, try2); !errors.Is(err, unix.ELOOP) {
			t.Errorf("openat2 %v: link: %v, want ELOOP", try2, err)
			unix.Close(fd)
		}
	}
}
