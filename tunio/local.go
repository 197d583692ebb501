package tunio

import (
	"net/netip"
	"strconv"
)

// Local is the host's end of a UDP exchange: the local address a datagram
// was sent to and the index of the interface it arrived on. A WireGuard
// peer is answered from the address it wrote to, as kernel WireGuard and
// wireguard-go do ("sticky sockets"): on a host with several addresses,
// a reply from whatever address routing picks would not pass the NAT or
// stateful firewall that let the peer's datagram in, and the peer would
// record an endpoint it never wrote to.
//
// A Local is a small comparable value without pointers (20 bytes), so
// that it can ride in the pipeline's queue items by value: the address is
// kept in 16 bytes, IPv4 as v4-mapped IPv6. The zero Local means none
// (send from the address routing picks); the unspecified address is never
// a datagram's destination, so no real Local is zero.
type Local struct {
	ip      [16]byte
	ifindex int32
}

// LocalFrom returns the Local of address ip (IPv4 plain or v4-mapped) on
// the interface with index ifindex (0: unknown). An invalid or
// unspecified ip gives the zero Local.
func LocalFrom(ip netip.Addr, ifindex int) Local {
	if !ip.IsValid() || ip.IsUnspecified() {
		return Local{}
	}
	return Local{ip: ip.As16(), ifindex: int32(ifindex)}
}

// IsValid reports whether l names an address (it is not the zero Local).
func (l Local) IsValid() bool { return l.ip != [16]byte{} }

// Addr is l's address, IPv4 plain; invalid for the zero Local.
func (l Local) Addr() netip.Addr {
	if !l.IsValid() {
		return netip.Addr{}
	}
	return netip.AddrFrom16(l.ip).Unmap()
}

// Is4 reports whether l is an IPv4 address.
func (l Local) Is4() bool { return l.IsValid() && netip.AddrFrom16(l.ip).Is4In6() }

// IfIndex is the index of the interface the datagram arrived on; 0 when
// not known.
func (l Local) IfIndex() int { return int(l.ifindex) }

// String is the address and, when known, "%" and the interface index;
// "none" for the zero Local.
func (l Local) String() string {
	if !l.IsValid() {
		return "none"
	}
	s := l.Addr().String()
	if l.ifindex != 0 {
		s += "%" + strconv.Itoa(int(l.ifindex))
	}
	return s
}
