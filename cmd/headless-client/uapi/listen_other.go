//go:build !linux

package uapi

import "net"

// listenUnix is unsupported outside Linux, where PipeGuard's tunnel does
// not run.
func listenUnix(path string) (*net.UnixListener, error) {
	return nil, ErrUnsupported
}
