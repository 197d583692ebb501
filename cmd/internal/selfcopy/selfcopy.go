// Package selfcopy gives a test a copy of its own test binary that
// another user can run: tests that start the binary again as an
// unprivileged user (to see a refusal) need one, since `go test` builds
// it in a directory only its own user can search.
package selfcopy

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// ForOthers copies the running test binary, as name, into a new
// directory that every user can search, removed in t.Cleanup, and
// returns the copy's path (mode 0755).
func ForOthers(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pipeguard-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, name)
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}
