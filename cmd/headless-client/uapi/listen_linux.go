package uapi

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// listenUnix creates the socket with mode 0600: only root (or whoever
// runs the tunnel) may configure it, since a get reveals the private key.
func listenUnix(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIO, err)
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
