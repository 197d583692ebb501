package wire

import "encoding/binary"

// ECN is an Explicit Congestion Notification codepoint (RFC 3168): the
// low two bits of the IPv4 TOS byte or the IPv6 traffic class.
type ECN uint8

// The four codepoints. A sender marks a packet ECT(0) or ECT(1) when its
// transport reacts to congestion marks; a queue that would drop such a
// packet may set CE instead.
const (
	NotECT ECN = 0b00
	ECT1   ECN = 0b01
	ECT0   ECN = 0b10
	CE     ECN = 0b11

	ecnMask = 0b11
)

// Capable reports whether a packet carrying e may be marked CE instead of
// being dropped: ECT(0), ECT(1), or already CE.
func (e ECN) Capable() bool { return e != NotECT }

// String names the codepoint as RFC 3168 does.
func (e ECN) String() string {
	switch e & ecnMask {
	case ECT1:
		return "ECT(1)"
	case ECT0:
		return "ECT(0)"
	case CE:
		return "CE"
	}
	return "Not-ECT"
}

// PacketECN returns the ECN field of the IPv4 or IPv6 packet b, and
// Not-ECT for anything too short to carry one or of another version.
func PacketECN(b []byte) ECN {
	switch {
	case len(b) >= IPv4HeaderMinSize && b[0]>>4 == 4:
		return ECN(b[1] & ecnMask)
	case len(b) >= IPv6HeaderSize && b[0]>>4 == 6:
		// The traffic class straddles bytes 0 and 1; its ECN bits are
		// bits 4 and 5 of byte 1.
		return ECN(b[1]>>4) & ecnMask
	}
	return NotECT
}

// SetPacketECN rewrites the ECN field of the IPv4 or IPv6 packet b to e
// and reports whether it could: b must be long enough for its header.
// IPv4's header checksum is updated incrementally (RFC 1624), so a valid
// checksum stays valid; IPv6 has none. Nothing else changes.
func SetPacketECN(b []byte, e ECN) bool {
	e &= ecnMask
	switch {
	case len(b) >= IPv4HeaderMinSize && b[0]>>4 == 4:
		old := binary.BigEndian.Uint16(b[0:2])
		b[1] = b[1]&^ecnMask | byte(e)
		updateChecksum(b[10:12], old, binary.BigEndian.Uint16(b[0:2]))
		return true
	case len(b) >= IPv6HeaderSize && b[0]>>4 == 6:
		b[1] = b[1]&^(ecnMask<<4) | byte(e)<<4
		return true
	}
	return false
}

// MarkCE sets CE on the packet b if it is ECN-capable and reports whether
// it did; a packet that is not (Not-ECT, or not IP) is left alone, and the
// queue that wanted to mark it drops it instead (RFC 3168, section 5).
func MarkCE(b []byte) bool {
	if !PacketECN(b).Capable() {
		return false
	}
	return SetPacketECN(b, CE)
}

// updateChecksum adjusts the ones'-complement checksum at sum for one
// 16-bit word of the covered data changing from old to new: RFC 1624's
// HC' = ~(~HC + ~m + m'), which never yields the 0x0000 that RFC 1141's
// shortcut could.
func updateChecksum(sum []byte, old, new uint16) {
	s := uint32(^binary.BigEndian.Uint16(sum)) + uint32(^old) + uint32(new)
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	binary.BigEndian.PutUint16(sum, ^uint16(s))
}

// EncapsulateECN is the outer header's ECN for an inner packet's, as
// Linux's tunnels set it (INET_ECN_encapsulate, which kernel WireGuard
// calls): ECT(0), ECT(1) and Not-ECT are copied, and CE goes out as
// ECT(0). The congestion an inner CE reports was already experienced; the
// inner header keeps it, and decapsulation (DecapsulateECN) keeps an inner
// CE whatever the outer says.
func EncapsulateECN(inner ECN) ECN {
	inner &= ecnMask
	if inner == CE {
		return ECT0
	}
	return inner
}

// DecapsulateECN combines the outer header's ECN with the inner packet's
// at the tunnel's egress, by RFC 6040's table (section 4.2), and reports
// whether the packet must be dropped instead: a CE on the outer header of
// a packet whose transport cannot understand one (inner Not-ECT) can
// only be signalled by a drop.
//
//	inner \ outer   Not-ECT  ECT(0)   ECT(1)   CE
//	Not-ECT         Not-ECT  Not-ECT  Not-ECT  drop
//	ECT(0)          ECT(0)   ECT(0)   ECT(1)   CE
//	ECT(1)          ECT(1)   ECT(1)   ECT(1)   CE
//	CE              CE       CE       CE       CE
func DecapsulateECN(outer, inner ECN) (ECN, bool) {
	outer, inner = outer&ecnMask, inner&ecnMask
	switch {
	case inner == NotECT:
		return NotECT, outer == CE
	case outer == CE:
		return CE, false
	case outer == ECT1 && inner == ECT0:
		return ECT1, false
	}
	return inner, false
}
