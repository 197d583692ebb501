package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

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

// TestPlantedLinks: links planted where the writer opens, rotates or
// deletes files never lead it to a file outside the directory: a log
// directory of another uid is refused outright; in root's own, a link at
// the log file is refused, and links at rotated names are replaced or
// removed, never followed.
func TestPlantedLinks(t *testing.T) {
	requireRoot(t)
	const content = "root's own file\n"
	newVictim := func(t *testing.T) string {
		t.Helper()
		v := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(v, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return v
	}
	checkVictim := func(t *testing.T, v string) {
		t.Helper()
		if b, err := os.ReadFile(v); err != nil || string(b) != content {
			t.Errorf("the victim changed: %q %v", b, err)
		}
	}

	t.Run("another uid's directory", func(t *testing.T) {
		v := newVictim(t)
		dir := filepath.Join(t.TempDir(), "logs")
		os.Mkdir(dir, 0o750)
		os.Symlink(v, filepath.Join(dir, "pg0.log"))
		os.Lchown(filepath.Join(dir, "pg0.log"), otherUID, otherUID)
		os.Chown(dir, otherUID, otherUID)
		if w, err := Open(dir, "pg0", 100, 2); !errors.Is(err, safedir.ErrUntrusted) {
			if w != nil {
				w.Close()
			}
			t.Fatalf("Open: %v, want ErrUntrusted", err)
		}
		checkVictim(t, v)
	})
	t.Run("a link at the log file", func(t *testing.T) {
		v := newVictim(t)
		dir := filepath.Join(t.TempDir(), "logs")
		os.Mkdir(dir, 0o750)
		os.Symlink(v, filepath.Join(dir, "pg0.log"))
		if w, err := Open(dir, "pg0", 100, 2); !errors.Is(err, safedir.ErrUntrusted) {
			if w != nil {
				w.Close()
			}
			t.Fatalf("Open: %v, want ErrUntrusted", err)
		}
		checkVictim(t, v)
	})
	t.Run("links at rotated names", func(t *testing.T) {
		v1, v2 := newVictim(t), newVictim(t)
		dir := filepath.Join(t.TempDir(), "logs")
		os.Mkdir(dir, 0o750)
		os.Symlink(v1, filepath.Join(dir, "pg0.log.1"))
		os.Symlink(v2, filepath.Join(dir, "pg0.log.2"))
		w, err := Open(dir, "pg0", 20, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			fmt.Fprintf(w, "line %04d\n", i)
		}
		w.Close()
		checkVictim(t, v1)
		checkVictim(t, v2)
		for _, name := range []string{"pg0.log", "pg0.log.1", "pg0.log.2"} {
			if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s: %v %v, want a file the writer made", name, fi, err)
			}
		}
	})
}
