package tunio

import "golang.org/x/sys/unix"

// The outer header's ECN field and the receive timestamp on the UDP
// socket: asked for on receive (the kernel then attaches them to each
// datagram as cmsgs, which parseControl reads) and, for ECN, set per
// datagram on send (putECN).

const ecnMask = 0b11

// enableRecvTOS asks the kernel for the TOS of IPv4 datagrams (also those
// an IPv6 socket receives v4-mapped) and the traffic class of IPv6 ones,
// so that a tunnel can carry ECN between outer and inner headers (RFC
// 6040). Best effort: without it, every datagram reads Not-ECT.
func enableRecvTOS(fd int, v6, v6only bool) {
	if !v6 || !v6only {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
	}
	if v6 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1)
	}
}

// enableRecvStamp asks the kernel to stamp received datagrams
// (SO_TIMESTAMPNS), so that a tunnel that manages its queue by time in
// queue counts the time a datagram waited in the socket's buffer too.
// Best effort: without it, Datagram.Stamp stays 0.
func enableRecvStamp(fd int) {
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
}
