package tunio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The outer header's ECN field on the UDP socket: asked for on receive
// (IP_RECVTOS, IPV6_RECVTCLASS: the kernel then attaches the TOS byte or
// traffic class to each datagram as a cmsg) and set per datagram on send
// (an IP_TOS or IPV6_TCLASS cmsg), so that a tunnel can carry ECN between
// outer and inner headers (RFC 6040). Kept apart from the other cmsgs of
// the same paths, which have functions of their own.

const ecnMask = 0b11

// tosCtrlSize is the room one TOS or traffic-class cmsg takes: the kernel
// delivers IP_TOS as one byte and IPV6_TCLASS as an int, and takes an int
// for both on send.
var tosCtrlSize = unix.CmsgSpace(4)

// enableRecvTOS asks the kernel for the TOS of IPv4 datagrams (also those
// an IPv6 socket receives v4-mapped) and the traffic class of IPv6 ones.
func enableRecvTOS(fd int, v6, v6only bool) {
	if !v6 || !v6only {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
	}
	if v6 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1)
	}
}

// nextCmsg splits the first cmsg off the control data b: its level, type
// and data, and the rest; ok is false when b holds no whole cmsg. It walks
// by hand because unix.ParseSocketControlMessage allocates.
func nextCmsg(b []byte) (level, typ int32, data, rest []byte, ok bool) {
	if len(b) < unix.SizeofCmsghdr {
		return 0, 0, nil, nil, false
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	l := int(h.Len)
	if l < unix.CmsgLen(0) || l > len(b) {
		return 0, 0, nil, nil, false
	}
	data = b[unix.CmsgLen(0):l]
	if next := unix.CmsgSpace(l - unix.CmsgLen(0)); next < len(b) {
		rest = b[next:]
	}
	return h.Level, h.Type, data, rest, true
}

// ecnFromCmsgs finds the TOS or traffic-class cmsg in the control data of
// one received datagram and returns its ECN bits; 0 (Not-ECT) when there
// is none.
func ecnFromCmsgs(b []byte) uint8 {
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return 0
		}
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_TOS && len(data) >= 1:
			return data[0] & ecnMask
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_TCLASS && len(data) >= 4:
			return uint8(*(*int32)(unsafe.Pointer(&data[0]))) & ecnMask
		}
		b = rest
	}
}

// putECNCmsg writes a cmsg that sends a datagram with the ECN bits ecn
// (and DSCP 0, as kernel WireGuard's outer header has) into b, which has
// room for tosCtrlSize bytes, and returns the bytes it took. v4 says the
// destination is IPv4, plain or v4-mapped on an IPv6 socket: the kernel
// then takes IP_TOS, else IPV6_TCLASS.
func putECNCmsg(b []byte, v4 bool, ecn uint8) int {
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	cm.Level, cm.Type = unix.IPPROTO_IPV6, unix.IPV6_TCLASS
	if v4 {
		cm.Level, cm.Type = unix.IPPROTO_IP, unix.IP_TOS
	}
	cm.SetLen(unix.CmsgLen(4))
	*(*int32)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = int32(ecn & ecnMask)
	return tosCtrlSize
}
