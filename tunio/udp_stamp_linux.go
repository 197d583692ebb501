package tunio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// When each datagram reached the host: the kernel stamps it on receive
// (SO_TIMESTAMPNS) and attaches the stamp as a cmsg, so that a tunnel
// that manages its queue by time in queue counts the time a datagram
// waited in the socket's buffer too. Kept apart from the other cmsgs of
// the receive path, which have functions of their own.

// enableRecvStamp asks the kernel to stamp received datagrams. Best
// effort: without it, Datagram.Stamp stays 0.
func enableRecvStamp(fd int) {
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
}

// stampFromCmsgs finds the receive timestamp in the control data of one
// received datagram and returns it in Unix nanoseconds, 0 when there is
// none.
func stampFromCmsgs(b []byte) int64 {
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return 0
		}
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return ts.Nano()
		}
		b = rest
	}
}
