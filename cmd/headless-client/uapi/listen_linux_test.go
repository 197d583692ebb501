package uapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestListenRefusesSharedDir: a socket directory that another uid owns
// (as RuntimeDirectory= made /run/wireguard the service user's), or that
// its group may write, is refused before any socket is made there: that
// uid could replace the socket and be handed what root's wg sets.
func TestListenRefusesSharedDir(t *testing.T) {
	requireRoot(t)
	tun, _ := newTunnel(t)
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int
	}{
		{"another uid's", 0o755, otherUID},
		{"group-writable", 0o775, 0},
		{"world-writable and sticky", os.ModeSticky | 0o777, 0},
	} {
		dir := filepath.Join(t.TempDir(), "wireguard")
		os.Mkdir(dir, 0o755)
		os.Chmod(dir, tc.mode)
		os.Chown(dir, tc.owner, tc.owner)
		path := filepath.Join(dir, "pg0.sock")
		srv, err := Listen(path, tun, nil, quiet())
		if err == nil {
			srv.ln.Close()
			t.Errorf("%s: Listen served at %s", tc.name, path)
			continue
		}
		if !errors.Is(err, safedir.ErrUntrusted) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: %v, want ErrUntrusted naming %s", tc.name, err, dir)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a socket was made: %v", tc.name, err)
		}
	}
}

// TestInherit serves a socket made by someone else (the service
// manager), answers on it, and leaves the file when it stops.
func TestInherit(t *testing.T) {
	tun, _ := newTunnel(t)
	path := filepath.Join(t.TempDir(), "pg0.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Inherit(f, path, tun, nil, quiet())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c := dial(t, path)
	io.WriteString(c, "get=1\n\n")
	if got := readAnswer(t, bufio.NewReader(c)); !strings.Contains(got, "listen_port=") || !strings.HasSuffix(got, "errno=0\n") {
		t.Errorf("get answer %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("the passed socket's file was removed: %v", err)
	}
}

// TestInheritRefuses: a passed descriptor is served only if it is a
// listening unix stream socket at the interface's path, in a directory
// no other uid can write.
func TestInheritRefuses(t *testing.T) {
	requireRoot(t)
	tun, _ := newTunnel(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "pg0.sock")
	listening := func(t *testing.T, p string) *os.File {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		f, _ := ln.File()
		ln.Close()
		t.Cleanup(func() { f.Close() })
		return f
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	os.Mkdir(theirs, 0o755)
	fTheirs := listening(t, filepath.Join(theirs, "pg0.sock"))
	os.Chown(theirs, otherUID, otherUID)
	dgram, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "d.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	fDgram, _ := dgram.File()
	dgram.Close()
	t.Cleanup(func() { fDgram.Close() })
	file, _ := os.Create(filepath.Join(dir, "file"))
	t.Cleanup(func() { file.Close() })
	for _, tc := range []struct {
		name string
		f    *os.File
		path string
		want string
	}{
		{"another path", listening(t, filepath.Join(dir, "other.sock")), path, "this interface's is"},
		{"a datagram socket", fDgram, filepath.Join(dir, "d.sock"), "not a stream socket"},
		{"a file", file, path, "passed socket"},
		{"another uid's directory", fTheirs, filepath.Join(theirs, "pg0.sock"), "belongs to uid 64000"},
	} {
		srv, err := Inherit(tc.f, tc.path, tun, nil, quiet())
		if err == nil {
			srv.ln.Close()
			t.Errorf("%s: served", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}
