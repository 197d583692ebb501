package main

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// markedResolver is a resolver whose queries carry the firewall mark
// mark (0: the system's resolver, unchanged). A start after a crash uses
// it for endpoint names: the crashed full tunnel's rules and unreachable
// routes stay until the start replaces them, and drop every unmarked
// packet that is not for the local network, the start's own lookups
// too; with the tunnel's mark they leave by the main table, as the
// tunnel's packets will (and as a first start's lookups do). It needs
// CAP_NET_ADMIN, which the start has checked. A resolver the system
// reaches on this host (systemd-resolved's 127.0.0.53) asks further
// itself, unmarked: that lookup is dropped while the routing is failed
// closed, which the README says.
func markedResolver(mark uint32) *net.Resolver {
	if mark == 0 {
		return net.DefaultResolver
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return err
		}
		return serr
	}}
	// The Go resolver: only it dials through Dial.
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return d.DialContext(ctx, network, address)
	}}
}
