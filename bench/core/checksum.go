package core

import "encoding/binary"

// OnesSum adds b, as big-endian 16-bit words (an odd last byte padded
// with zero), to the ones' complement sum sum: the arithmetic of the IPv4,
// ICMP and UDP checksums (RFC 1071), for the packets the harness builds.
func OnesSum(sum uint16, b []byte) uint16 {
	s := uint32(sum)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
