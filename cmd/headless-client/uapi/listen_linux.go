package uapi

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/headless-client/safedir"
)

// checkSocketDir refuses to serve a socket in a directory that another
// user can write (package safedir's rule: the euid's or root's, writable
// by no one else): wg(8) looks in /run/wireguard first for every
// interface, kernel ones too, so whoever can write there can replace a
// socket with one of their own and be handed what root's wg sets, the
// private key included. With create, a missing directory is made (mode
// 0755, as wireguard-go makes it).
func checkSocketDir(dir string, create bool) error {
	var err error
	if create {
		var d *safedir.Dir
		if d, err = safedir.MkdirAll(dir, 0o755); err == nil {
			d.Close()
		}
	} else {
		err = safedir.Check(dir)
	}
	if err != nil {
		return fmt.Errorf("uapi: socket directory %s: %w (another user could put a socket of its own in the place of an interface's: chown root:root %s; chmod 755 %s)", dir, err, dir, dir)
	}
	return nil
}

// listenUnix creates the socket with mode 0600: only root (or whoever
// runs the tunnel) may configure it, since a get reveals the private key.
func listenUnix(path string) (*net.UnixListener, error) {
	if err := checkSocketDir(filepath.Dir(path), true); err != nil {
		return nil, err
	}
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	// The umask is process-wide; the listener is made once, at start,
	// before other goroutines create files.
	old := unix.Umask(0o177)
	defer unix.Umask(old)
	ln, err := net.ListenUnix("unix", addr)
	if err == nil {
		return ln, nil
	}
	// A socket file exists: in use, or left by a process that died.
	if c, derr := net.Dial("unix", path); derr == nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if rerr := os.Remove(path); rerr != nil {
		return nil, fmt.Errorf("%w: %v (and removing the stale socket: %v)", ErrIO, err, rerr)
	}
	ln, err = net.ListenUnix("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIO, err)
	}
	return ln, nil
}

// inheritUnix takes a socket the service manager made: it must be a
// unix stream socket that listens, bound at path, in a directory no
// other user can write. It is not unlinked on close: its maker removes
// it (the .socket unit's RemoveOnStop=).
func inheritUnix(f *os.File, path string) (*net.UnixListener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%w: passed socket: %v", ErrIO, err)
	}
	var bound string
	var cerr error
	err = rc.Control(func(fd uintptr) {
		bound, cerr = listeningUnixPath(int(fd))
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: passed socket: %v", ErrIO, err)
	}
	if !samePath(bound, path) {
		return nil, fmt.Errorf("%w: the socket passed in is %s; this interface's is %s", ErrIO, bound, path)
	}
	if err := checkSocketDir(filepath.Dir(bound), false); err != nil {
		return nil, err
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%w: passed socket: %v", ErrIO, err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("%w: passed socket is not a unix socket", ErrIO)
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// listeningUnixPath returns the path a listening unix stream socket is
// bound to, or why fd is no such socket.
func listeningUnixPath(fd int) (string, error) {
	for _, o := range []struct {
		opt, want int
		what      string
	}{
		{unix.SO_DOMAIN, unix.AF_UNIX, "a unix socket"},
		{unix.SO_TYPE, unix.SOCK_STREAM, "a stream socket"},
		{unix.SO_ACCEPTCONN, 1, "listening"},
	} {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return "", err
		}
		if v != o.want {
			return "", fmt.Errorf("not %s", o.what)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", err
	}
	su, ok := sa.(*unix.SockaddrUnix)
	if !ok || su.Name == "" || su.Name[0] == '@' {
		return "", fmt.Errorf("not bound to a path")
	}
	return su.Name, nil
}

// samePath reports whether a and b name the same file: the same name in
// the same directory, links on the way resolved (/var/run is /run).
func samePath(a, b string) bool {
	if filepath.Base(a) != filepath.Base(b) {
		return false
	}
	da, err := filepath.EvalSymlinks(filepath.Dir(a))
	if err != nil {
		return false
	}
	db, err := filepath.EvalSymlinks(filepath.Dir(b))
	return err == nil && da == db
}
