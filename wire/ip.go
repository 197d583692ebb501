package wire

import (
	"encoding/binary"
	"net/netip"
)

// Header lengths of the fixed IP headers.
const (
	IPv4HeaderMinSize = 20
	IPv6HeaderSize    = 40
)

// IPHeader is what the pipeline needs of an inner packet: version, the two
// addresses, and the packet's own idea of its length, which trims the
// padding WireGuard adds.
type IPHeader struct {
	Version  int
	Src, Dst netip.Addr
	Len      int // total length of the packet including its header
}

// PeekIP reads the IPv4 or IPv6 header at the start of b without copying b.
// It fails if b is not an IP packet or is shorter than its header says; it
// allows b to be longer (padding).
func PeekIP(b []byte) (IPHeader, error) {
	if len(b) < 1 {
		return IPHeader{}, ErrNotIP
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < IPv4HeaderMinSize {
			return IPHeader{}, ErrIPTruncated
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if ihl < IPv4HeaderMinSize || total < ihl {
			return IPHeader{}, ErrNotIP
		}
		if total > len(b) {
			return IPHeader{}, ErrIPTruncated
		}
		return IPHeader{
			Version: 4,
			Src:     netip.AddrFrom4([4]byte(b[12:16])),
			Dst:     netip.AddrFrom4([4]byte(b[16:20])),
			Len:     total,
		}, nil
	case 6:
		if len(b) < IPv6HeaderSize {
			return IPHeader{}, ErrIPTruncated
		}
		total := IPv6HeaderSize + int(binary.BigEndian.Uint16(b[4:6]))
		if total > len(b) {
			return IPHeader{}, ErrIPTruncated
		}
		return IPHeader{
			Version: 6,
			Src:     netip.AddrFrom16([16]byte(b[8:24])),
			Dst:     netip.AddrFrom16([16]byte(b[24:40])),
			Len:     total,
		}, nil
	default:
		return IPHeader{}, ErrNotIP
	}
}
