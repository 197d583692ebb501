//go:build !linux

package uapi

import (
	"net"
	"os"
)

// listenUnix is unsupported outside Linux, where PipeGuard's tunnel does
// not run.
func listenUnix(path string) (*net.UnixListener, error) {
	return nil, ErrUnsupported
}

// inheritUnix is unsupported outside Linux.
func inheritUnix(f *os.File, path string) (*net.UnixListener, error) {
	return nil, ErrUnsupported
}

// checkSocketDir is unsupported outside Linux.
func checkSocketDir(dir string, create bool) error { return ErrUnsupported }
