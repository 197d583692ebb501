package selfcopy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestForOthers: the copy is this binary, byte for byte, executable by
// all, in a directory all may search, and it is gone after the test.
func TestForOthers(t *testing.T) {
	var bin string
	t.Run("copy", func(t *testing.T) {
		bin = ForOthers(t, "selfcopy.test")
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("the copy differs from the test binary")
		}
		for _, p := range []struct {
			path string
			mode os.FileMode
		}{{bin, 0o755}, {filepath.Dir(bin), 0o755 | os.ModeDir}} {
			fi, err := os.Stat(p.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != p.mode {
				t.Errorf("%s: mode %v, want %v", p.path, fi.Mode(), p.mode)
			}
		}
	})
	if _, err := os.Stat(filepath.Dir(bin)); !os.IsNotExist(err) {
		t.Errorf("the copy's directory is still there after the test: %v", err)
	}
}
