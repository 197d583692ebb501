package wire

import (
	"encoding/binary"
	"hash/maphash"
)

// IP protocol numbers whose first four payload bytes are a source and a
// destination port.
const (
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoSCTP    = 132
	protoUDPLite = 136
)

// flowKeySize holds the longest flow key: two IPv6 addresses, the
// protocol and the two ports, and the IPv6 flow label.
const flowKeySize = 16 + 16 + 1 + 4 + 3

// FlowHash is the hash of the inner packet b's flow, for a flow-fair
// queue: the addresses, the protocol and, for TCP, UDP, UDP-Lite, DCCP
// and SCTP, the ports. Two packets of one flow hash alike; the payload
// and every other header field (TTL, ECN, checksums, lengths) leave the
// hash alone. IPv6 adds the flow label (a sender sets it per flow, RFC
// 6437) and takes ports only when no extension header comes first; IPv4
// takes none from a fragment (non-first fragments carry none, and all of
// a datagram's fragments must stay one flow, in order). Anything that is
// not an IP packet of at least its fixed header hashes as the empty key:
// one flow, dropped later by routing.
//
// seed keys the hash, so that whoever does not know it cannot choose
// packets that crowd into one queue (fq_codel perturbs its hash the same
// way). It allocates nothing.
func FlowHash(seed maphash.Seed, b []byte) uint64 {
	var key [flowKeySize]byte
	return maphash.Bytes(seed, key[:flowKey(&key, b)])
}

// flowKey writes b's flow key into key and returns its length.
func flowKey(key *[flowKeySize]byte, b []byte) int {
	if len(b) < 1 {
		return 0
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < IPv4HeaderMinSize {
			return 0
		}
		n := copy(key[:], b[12:20])
		proto := b[9]
		key[n] = proto
		n++
		ihl := int(b[0]&0x0f) * 4
		fragment := binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 // MF or an offset
		if hasPorts(proto) && !fragment && ihl >= IPv4HeaderMinSize && len(b) >= ihl+4 {
			n += copy(key[n:], b[ihl:ihl+4])
		}
		return n
	case 6:
		if len(b) < IPv6HeaderSize {
			return 0
		}
		n := copy(key[:], b[8:40])
		proto := b[6]
		key[n] = proto
		n++
		// The flow label: the low 20 bits of the first word.
		key[n], key[n+1], key[n+2] = b[1]&0x0f, b[2], b[3]
		n += 3
		if hasPorts(proto) && len(b) >= IPv6HeaderSize+4 {
			n += copy(key[n:], b[IPv6HeaderSize:IPv6HeaderSize+4])
		}
		return n
	}
	return 0
}

func hasPorts(proto byte) bool {
	switch proto {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite:
		return true
	}
	return false
}
