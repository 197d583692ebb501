// Package leakcap watches a tunnel's outer interface for cleartext: it
// captures every frame the interface sends (an AF_PACKET socket, in the
// network namespace of the thread that opens it) and counts as a leak
// each one that is not ARP, not IPv6 link-local control (neighbour
// discovery, multicast listener reports), not WireGuard to the peer and
// not an ICMP error to the peer about a WireGuard datagram of its own.
// The end-to-end tests use it to show that a full tunnel fails closed:
// after a crash, while its link is down, during a start.
//
// Classify is the parser, with no I/O, so that it can be fuzzed; Capture
// is the socket around it.
package leakcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Ethernet types and IP protocol numbers the classification looks at.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100

	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoICMPv6   = 58
)

// Errors of Classify: a frame too short or malformed to judge. A capture
// counts such a frame as a leak (it left the interface and nothing shows
// it was harmless).
var (
	ErrShort     = errors.New("leakcap: frame too short")
	ErrMalformed = errors.New("leakcap: malformed frame")
)

// Filter says which traffic on the interface is the tunnel's own.
type Filter struct {
	// Peer is the WireGuard peer's endpoint: UDP to it carrying a
	// WireGuard message is the tunnel's.
	Peer netip.AddrPort
}

// Packet is what Classify found in one frame.
type Packet struct {
	EtherType        uint16
	Proto            uint8 // the IP protocol (after IPv6 hop-by-hop options); 0 for ARP
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP and UDP
	ICMPType         uint8  // ICMP and ICMPv6
	HopLimit         uint8  // IPv6
	WireGuard        bool   // UDP carrying what looks like a WireGuard message
	Len              int    // the frame's length

	// An ICMP error quotes the datagram it is about: Quoted is that
	// datagram's source and destination, QuotedWireGuard whether it is
	// UDP carrying a WireGuard message (by its UDP length, as a quote may
	// be cut short).
	Quoted          [2]netip.AddrPort
	QuotedWireGuard bool
}

// String describes the packet in one short line, like tcpdump -n.
func (p Packet) String() string {
	switch p.EtherType {
	case etherARP:
		return "arp"
	case etherIPv4, etherIPv6:
	default:
		return fmt.Sprintf("ethertype %#04x, %d bytes", p.EtherType, p.Len)
	}
	switch p.Proto {
	case protoTCP, protoUDP:
		name := "tcp"
		if p.Proto == protoUDP {
			name = "udp"
			if p.WireGuard {
				name = "wireguard"
			}
		}
		return fmt.Sprintf("%s %s > %s, %d bytes", name, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.Len)
	case protoICMP, protoICMPv6:
		name := "icmp"
		if p.Proto == protoICMPv6 {
			name = "icmp6"
		}
		return fmt.Sprintf("%s type %d %s > %s, %d bytes", name, p.ICMPType, p.Src, p.Dst, p.Len)
	}
	return fmt.Sprintf("ip proto %d %s > %s, %d bytes", p.Proto, p.Src, p.Dst, p.Len)
}

// Leak reports whether p is cleartext the tunnel should not have let out.
func (f Filter) Leak(p Packet) bool {
	switch {
	case p.EtherType == etherARP:
		return false
	case p.EtherType == etherIPv6 && linkLocalControl(p):
		return false
	case p.Proto == protoUDP && p.WireGuard && netip.AddrPortFrom(p.Dst, p.DstPort) == f.Peer:
		return false
	case p.QuotedWireGuard && p.Dst == f.Peer.Addr() && p.Quoted[0] == f.Peer && p.Quoted[1].Addr() == p.Src:
		// The kernel's answer to the peer's WireGuard datagram that found
		// no socket (port unreachable, while the client is down): it
		// quotes ciphertext the peer sent, and nothing of the tunnel's
		// cleartext.
		return false
	}
	return true
}

// linkLocalControl: ICMPv6 neighbour discovery (router and neighbour
// solicitations and advertisements, redirects), which RFC 4861 sends
// with a hop limit of 255 so that no router forwards it (a neighbour
// advertisement for a global address comes from that address), and
// multicast listener queries and reports, between link-local (or
// unspecified) and link-scope multicast addresses. They never leave the
// link.
func linkLocalControl(p Packet) bool {
	if p.Proto != protoICMPv6 {
		return false
	}
	switch p.ICMPType {
	case 133, 134, 135, 136, 137:
		return p.HopLimit == 255
	case 130, 131, 132, 143:
		srcOK := p.Src.IsUnspecified() || p.Src.IsLinkLocalUnicast()
		dstOK := p.Dst.IsLinkLocalUnicast() || p.Dst.IsLinkLocalMulticast() || p.Dst.IsInterfaceLocalMulticast()
		return srcOK && dstOK
	}
	return false
}

// Classify parses an Ethernet frame as far as Leak needs: the Ethernet
// type (past one VLAN tag), the IP addresses and protocol, the ports,
// the ICMP type, and whether a UDP payload is a WireGuard message. It
// never reads past the frame and allocates nothing.
func Classify(frame []byte) (Packet, error) {
	p := Packet{Len: len(frame)}
	if len(frame) < 14 {
		return p, ErrShort
	}
	p.EtherType = binary.BigEndian.Uint16(frame[12:14])
	rest := frame[14:]
	if p.EtherType == etherVLAN {
		if len(rest) < 4 {
			return p, ErrShort
		}
		p.EtherType = binary.BigEndian.Uint16(rest[2:4])
		rest = rest[4:]
	}
	var err error
	switch p.EtherType {
	case etherIPv4:
		rest, err = p.ipv4(rest)
	case etherIPv6:
		rest, err = p.ipv6(rest)
	default:
		return p, nil
	}
	if err != nil {
		return p, err
	}
	return p, p.transport(rest)
}

// ipv4 reads an IPv4 header and returns its payload (only the first
// fragment carries the transport header; a later one has none).
func (p *Packet) ipv4(b []byte) ([]byte, error) {
	if len(b) < 20 {
		return nil, ErrShort
	}
	if b[0]>>4 != 4 {
		return nil, ErrMalformed
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return nil, ErrMalformed
	}
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return nil, nil // a later fragment: no transport header
	}
	return b[ihl:], nil
}

// ipv6 reads an IPv6 header and a hop-by-hop options header (which
// multicast listener reports carry), and returns the payload.
func (p *Packet) ipv6(b []byte) ([]byte, error) {
	if len(b) < 40 {
		return nil, ErrShort
	}
	if b[0]>>4 != 6 {
		return nil, ErrMalformed
	}
	p.Proto, p.HopLimit = b[6], b[7]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	b = b[40:]
	if p.Proto == protoHopByHop {
		if len(b) < 8 {
			return nil, ErrShort
		}
		n := (int(b[1]) + 1) * 8
		if len(b) < n {
			return nil, ErrShort
		}
		p.Proto = b[0]
		b = b[n:]
	}
	return b, nil
}

// transport reads the ports or the ICMP type, and looks at a UDP payload.
func (p *Packet) transport(b []byte) error {
	if b == nil {
		return nil
	}
	switch p.Proto {
	case protoTCP, protoUDP:
		if len(b) < 8 {
			return ErrShort
		}
		p.SrcPort = binary.BigEndian.Uint16(b[0:2])
		p.DstPort = binary.BigEndian.Uint16(b[2:4])
		if p.Proto == protoUDP {
			p.WireGuard = isWireGuard(b[8:])
		}
	case protoICMP, protoICMPv6:
		if len(b) < 1 {
			return ErrShort
		}
		p.ICMPType = b[0]
		if p.icmpError() && len(b) >= 8 {
			p.quote(b[8:])
		}
	}
	return nil
}

// icmpError: destination unreachable, time exceeded, parameter problem
// (and ICMPv6's packet too big), the messages that quote a datagram.
func (p *Packet) icmpError() bool {
	if p.Proto == protoICMP {
		return p.ICMPType == 3 || p.ICMPType == 11 || p.ICMPType == 12
	}
	return p.ICMPType >= 1 && p.ICMPType <= 4
}

// quote reads the datagram an ICMP error quotes, of the error's own
// family: its addresses and ports, and whether it is a WireGuard
// message. A quote too short to tell leaves Quoted unset.
func (p *Packet) quote(b []byte) {
	var q Packet
	var err error
	switch p.Proto {
	case protoICMP:
		b, err = q.ipv4(b)
	case protoICMPv6:
		if len(b) < 7 || b[6] != protoUDP {
			return // UDP right after the header, not behind extensions
		}
		b, err = q.ipv6(b)
	}
	if err != nil || len(b) < 12 || q.Proto != protoUDP {
		return // malformed, a later fragment, not UDP, or cut too short
	}
	p.Quoted[0] = netip.AddrPortFrom(q.Src, binary.BigEndian.Uint16(b[0:2]))
	p.Quoted[1] = netip.AddrPortFrom(q.Dst, binary.BigEndian.Uint16(b[2:4]))
	n := int(binary.BigEndian.Uint16(b[4:6])) - 8
	p.QuotedWireGuard = n >= 4 && wireGuardHeader(b[8:12], n)
}

// isWireGuard reports a WireGuard message: a type from 1 to 4, three
// zero bytes, and the length that type has (a transport message: its
// header and tag at least, padded to 16 bytes).
func isWireGuard(b []byte) bool {
	return len(b) >= 4 && wireGuardHeader(b[:4], len(b))
}

// wireGuardHeader reports whether the message's first four bytes h and
// its length n are a WireGuard message's.
func wireGuardHeader(h []byte, n int) bool {
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return false
	}
	switch h[0] {
	case 1:
		return n == 148
	case 2:
		return n == 92
	case 3:
		return n == 64
	case 4:
		return n >= 32 && (n-32)%16 == 0
	}
	return false
}
