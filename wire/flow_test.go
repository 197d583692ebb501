package wire

import (
	"encoding/binary"
	"hash/maphash"
	"testing"
)

// tcp4 is a TCP-in-IPv4 packet from 10.0.0.1:sport to 10.0.0.2:dport with
// n payload bytes of fill.
func tcp4(sport, dport uint16, n int, fill byte) []byte {
	b := make([]byte, 20+20+n)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, protoTCP
	copy(b[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	for i := 40; i < len(b); i++ {
		b[i] = fill
	}
	return b
}

// udp6 is a UDP-in-IPv6 packet from ::1:sport to ::2:dport with flow
// label label and n payload bytes of fill.
func udp6(sport, dport uint16, label uint32, n int, fill byte) []byte {
	b := make([]byte, 40+8+n)
	binary.BigEndian.PutUint32(b[0:], 6<<28|label&0xfffff)
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	b[6], b[7] = protoUDP, 64
	b[23], b[39] = 1, 2
	binary.BigEndian.PutUint16(b[40:], sport)
	binary.BigEndian.PutUint16(b[42:], dport)
	for i := 48; i < len(b); i++ {
		b[i] = fill
	}
	return b
}

func TestFlowHash(t *testing.T) {
	seed := maphash.MakeSeed()
	h := func(b []byte) uint64 { return FlowHash(seed, b) }
	same := func(name string, a, b []byte) {
		t.Helper()
		if h(a) != h(b) {
			t.Errorf("%s: hashes differ", name)
		}
	}
	differ := func(name string, a, b []byte) {
		t.Helper()
		if h(a) == h(b) {
			t.Errorf("%s: hashes equal", name)
		}
	}
	base := tcp4(1000, 80, 100, 0)
	same("payload", base, tcp4(1000, 80, 1200, 7))
	marked := tcp4(1000, 80, 100, 0)
	marked[1], marked[8], marked[10] = 3, 1, 0xff // ECN CE, TTL, checksum
	same("ECN, TTL and checksum", base, marked)
	differ("source port", base, tcp4(1001, 80, 100, 0))
	differ("destination port", base, tcp4(1000, 81, 100, 0))
	other := tcp4(1000, 80, 100, 0)
	other[15] = 9
	differ("source address", base, other)
	udp := tcp4(1000, 80, 100, 0)
	udp[9] = protoUDP
	differ("protocol", base, udp)

	// Fragments: no ports, so every fragment of a datagram is one flow.
	frag := tcp4(1000, 80, 100, 0)
	binary.BigEndian.PutUint16(frag[6:], 0x2000) // MF
	later := tcp4(5555, 5555, 100, 0)            // a later fragment's payload is not a TCP header
	binary.BigEndian.PutUint16(later[6:], 100)   // offset 800
	same("fragments", frag, later)

	// IPv4 options move the ports.
	opt := make([]byte, 24+20)
	copy(opt, base[:20])
	opt[0] = 0x46
	copy(opt[24:], base[20:40])
	same("options", base, opt)

	v6 := udp6(53, 5353, 0x12345, 30, 0)
	same("v6 payload", v6, udp6(53, 5353, 0x12345, 300, 1))
	v6ecn := udp6(53, 5353, 0x12345, 30, 0)
	SetPacketECN(v6ecn, CE)
	same("v6 ECN", v6, v6ecn)
	differ("v6 port", v6, udp6(54, 5353, 0x12345, 30, 0))
	differ("v6 flow label", v6, udp6(53, 5353, 0x12346, 30, 0))
	ext := udp6(53, 5353, 0x12345, 30, 0)
	ext[6] = 0 // hop-by-hop options first: the ports are not where UDP's would be
	same("v6 extension header hides ports", ext, func() []byte { b := udp6(99, 99, 0x12345, 30, 0); b[6] = 0; return b }())

	if FlowHash(seed, nil) != FlowHash(seed, []byte{0x45, 1, 2}) {
		t.Error("non-IP packets are not one flow")
	}
	if h(base) == FlowHash(maphash.MakeSeed(), base) {
		t.Error("the seed does not key the hash")
	}
}

func TestFlowHashAllocs(t *testing.T) {
	seed := maphash.MakeSeed()
	b := tcp4(1, 2, 1200, 0)
	if n := testing.AllocsPerRun(100, func() { FlowHash(seed, b) }); n != 0 {
		t.Fatalf("%v allocations per FlowHash", n)
	}
}

func BenchmarkFlowHash(b *testing.B) {
	seed := maphash.MakeSeed()
	p4, p6 := tcp4(1, 2, 1200, 0), udp6(1, 2, 3, 1200, 0)
	for b.Loop() {
		FlowHash(seed, p4)
		FlowHash(seed, p6)
	}
}

// FuzzFlowHash feeds the classifier malformed IPv4 and IPv6 headers (and
// anything else): it must never panic or read past b, must give one
// answer for one packet, and must ignore the fields that vary within a
// flow (ECN, TTL or hop limit, checksum, payload beyond the ports).
func FuzzFlowHash(f *testing.F) {
	f.Add(tcp4(1000, 80, 10, 0))
	f.Add(udp6(53, 53, 1, 10, 0))
	f.Add(tcp4(1, 2, 0, 0)[:22])
	f.Add(udp6(1, 2, 3, 0, 0)[:41])
	f.Add([]byte{0x4f, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		seed := maphash.MakeSeed()
		h := FlowHash(seed, b)
		if FlowHash(seed, b) != h {
			t.Fatal("two hashes for one packet")
		}
		c := append([]byte(nil), b...)
		switch {
		case len(c) >= IPv4HeaderMinSize && c[0]>>4 == 4:
			c[1] ^= 0x03 // ECN
			c[8]++       // TTL
			c[10] ^= 0x5a
			ihl := int(c[0]&0x0f) * 4
			if ihl >= IPv4HeaderMinSize && len(c) > ihl+4 {
				c[len(c)-1] ^= 0xff // payload past the ports
			}
		case len(c) >= IPv6HeaderSize && c[0]>>4 == 6:
			c[1] ^= 0x30 // ECN
			c[7]++       // hop limit
			if len(c) > IPv6HeaderSize+4 {
				c[len(c)-1] ^= 0xff
			}
		default:
			return
		}
		if FlowHash(seed, c) != h {
			t.Fatalf("a field that varies within a flow changed the hash:\n% x\n% x", b, c)
		}
	})
}

// FuzzSetPacketECN: whatever the header, rewriting the ECN field of an
// IPv4 packet with a valid checksum leaves a valid checksum and touches
// nothing but the two bits and the checksum.
func FuzzSetPacketECN(f *testing.F) {
	f.Add(tcp4(1, 2, 0, 0), byte(3))
	f.Add(udp6(1, 2, 3, 0, 0), byte(2))
	f.Fuzz(func(t *testing.T, b []byte, e byte) {
		ecn := ECN(e & ecnMask)
		v4 := len(b) >= IPv4HeaderMinSize && b[0]>>4 == 4
		if v4 {
			binary.BigEndian.PutUint16(b[10:], ipv4Checksum(b[:IPv4HeaderMinSize]))
		}
		before := append([]byte(nil), b...)
		ok := SetPacketECN(b, ecn)
		if ok != (v4 || len(b) >= IPv6HeaderSize && b[0]>>4 == 6) {
			t.Fatalf("SetPacketECN = %v for % x", ok, before)
		}
		if !ok {
			return
		}
		if got := PacketECN(b); got != ecn {
			t.Fatalf("ECN %v, want %v", got, ecn)
		}
		if v4 && binary.BigEndian.Uint16(b[10:]) != ipv4Checksum(b[:IPv4HeaderMinSize]) {
			t.Fatalf("checksum invalid after setting %v on % x", ecn, before[:IPv4HeaderMinSize])
		}
		for i := range b {
			if b[i] != before[i] && i != 1 && !(v4 && (i == 10 || i == 11)) {
				t.Fatalf("byte %d changed", i)
			}
		}
	})
}
