package tunio

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The control messages (cmsgs) of the UDP socket, read and written by hand:
// unix.ParseSocketControlMessage and its kin allocate, and these run for
// every datagram.

const (
	// sizeofSegmentCmsg is a UDP_SEGMENT cmsg: a uint16 segment size.
	sizeofSegmentCmsg = 24 // unix.CmsgSpace(2)

	// sizeofPktinfoCmsg is the room for either pktinfo cmsg; the IPv6 one
	// (struct in6_pktinfo, 20 bytes) is the larger.
	sizeofPktinfoCmsg = 40 // unix.CmsgSpace(unix.SizeofInet6Pktinfo)

	// sizeofECNCmsg is an IP_TOS or IPV6_TCLASS cmsg: an int.
	sizeofECNCmsg = 24 // unix.CmsgSpace(4)

	// sendCtrlSize is one sendmmsg entry's control data: a segment size,
	// the outer ECN and a source address, any of them.
	sendCtrlSize = sizeofSegmentCmsg + sizeofECNCmsg + sizeofPktinfoCmsg

	// recvCtrlSize is one received message's control data: the UDP_GRO
	// segment size (an int, 24 bytes with its header), the pktinfo (32
	// bytes for IPv4, 40 for IPv6), the TOS or traffic class (24) and the
	// receive timestamp (a timespec, 32), with room to spare should the
	// kernel add another cmsg; one that does not fit is cut off
	// (MSG_CTRUNC), and what did fit is still read.
	recvCtrlSize = 160
)

// received is what the control data of one received message says.
type received struct {
	seg   int   // the UDP GRO segment size; 0: the datagram was not coalesced
	local Local // the local end it was sent to; zero without a pktinfo
	ecn   uint8 // the outer header's ECN field; 0 (Not-ECT) without a TOS
	stamp int64 // when it reached the host, Unix nanoseconds; 0 without one
}

// parseControl walks the control data b of one received message. It
// reads UDP_GRO, IP_PKTINFO (an IPv4 socket's) and IPV6_PKTINFO (an IPv6
// socket's, v4-mapped for IPv4 datagrams), IP_TOS and IPV6_TCLASS (the
// outer ECN: RFC 6040 carries it into the inner header), and
// SCM_TIMESTAMPNS (how long the datagram waited in the socket counts as
// time in the tunnel's queue). Malformed or cut-off data ends the walk
// with what was found so far; it never panics.
func parseControl(b []byte) (r received) {
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(b) {
			return r
		}
		data := b[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			// The kernel puts an int here.
			r.seg = int(int32(binary.NativeEndian.Uint32(data)))
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TOS && len(data) >= 4:
			// An int, as a sender writes it.
			r.ecn = uint8(binary.NativeEndian.Uint32(data)) & ecnMask
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TOS && len(data) >= 1:
			// One byte, as the kernel delivers it.
			r.ecn = data[0] & ecnMask
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_TCLASS && len(data) >= 4:
			// An int: the traffic class.
			r.ecn = uint8(binary.NativeEndian.Uint32(data)) & ecnMask
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			r.stamp = (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr. spec_dst is
			// the local address the datagram reached: the destination
			// itself for unicast, the interface's address for a
			// broadcast, which could not be a source.
			ifindex := int(int32(binary.NativeEndian.Uint32(data)))
			r.local = localOf(netip.AddrFrom4([4]byte(data[4:8])), ifindex)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			ifindex := int(int32(binary.NativeEndian.Uint32(data[16:20])))
			r.local = localOf(netip.AddrFrom16([16]byte(data[:16])), ifindex)
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next >= len(b) {
			return r
		}
		b = b[next:]
	}
	return r
}

// localOf is the Local a datagram to ip arrived at, or the zero Local
// when ip could not be a source to answer from: multicast, or broadcast.
func localOf(ip netip.Addr, ifindex int) Local {
	u := ip.Unmap()
	if u.IsMulticast() || u == netip.IPv4Unspecified() || u == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return Local{}
	}
	return LocalFrom(ip, ifindex)
}

// GROSegment finds the UDP_GRO cmsg in the control data b of one
// received message and returns the segment size it carries, or 0 when
// the datagram was not coalesced. (Exported for the bench's raw
// receiver, which reads the same cmsg.)
func GROSegment(b []byte) int {
	return parseControl(b).seg
}

// putSegment writes a UDP_SEGMENT cmsg for segments of size bytes at the
// start of b (at least sizeofSegmentCmsg long, aligned for a cmsghdr) and
// returns its length.
func putSegment(b []byte, size uint16) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return sizeofSegmentCmsg
}

// putECN writes the cmsg that sends a datagram with the outer ECN field
// ecn (and DSCP 0, as kernel WireGuard's outer header has) at the start
// of b (at least sizeofECNCmsg long, aligned for a cmsghdr) and returns
// its length. v4 says the destination is IPv4, plain or v4-mapped on an
// IPv6 socket: the kernel then takes IP_TOS, else IPV6_TCLASS.
func putECN(b []byte, v4 bool, ecn uint8) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_TCLASS
	if v4 {
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TOS
	}
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], uint32(ecn&ecnMask))
	return sizeofECNCmsg
}

// putPktinfo writes the cmsg that sends from l's address at the start of b
// (at least sizeofPktinfoCmsg long, aligned for a cmsghdr) and returns its
// length: IP_PKTINFO on an IPv4 socket, IPV6_PKTINFO on an IPv6 one (which
// takes IPv4 sources v4-mapped, for IPv4 destinations). The interface is
// left to routing, as kernel WireGuard leaves it: only the source address
// is fixed, and if it is no longer the host's the kernel refuses the send.
func putPktinfo(b []byte, l Local, v6 bool) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	if !v6 {
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		d := b[unix.CmsgLen(0):unix.CmsgSpace(unix.SizeofInet4Pktinfo)]
		clear(d)
		copy(d[4:8], l.ip[12:]) // spec_dst; ifindex and addr stay 0
		return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	d := b[unix.CmsgLen(0):unix.CmsgSpace(unix.SizeofInet6Pktinfo)]
	clear(d)
	copy(d[:16], l.ip[:]) // addr; ifindex stays 0
	return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
}

// canSendFrom reports whether a datagram to dst can carry l as its source
// on a socket of the given family: l is set and of dst's family, and an
// IPv4 socket takes only IPv4.
func canSendFrom(l Local, dst netip.AddrPort, v6 bool) bool {
	if !l.IsValid() {
		return false
	}
	is4 := dst.Addr().Unmap().Is4()
	return l.Is4() == is4 && (v6 || is4)
}
