package wire

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// ipv4Checksum is the header checksum of the IPv4 header h computed from
// scratch (RFC 791): the ones'-complement sum of its 16-bit words with the
// checksum field taken as zero.
func ipv4Checksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// ipv4WithChecksum is an IPv4 header of ihl words (options filled with
// r's bytes) with the given TOS and a valid checksum, then payload bytes.
func ipv4WithChecksum(r *rand.Rand, ihl int, tos byte, payload int) []byte {
	b := make([]byte, ihl*4+payload)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[0] = 0x40 | byte(ihl)
	b[1] = tos
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[10:], ipv4Checksum(b[:ihl*4]))
	return b
}

func TestMarkCEKeepsIPv4ChecksumValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		ihl := 5 + i%11
		tos := byte(r.Uint32())
		b := ipv4WithChecksum(r, ihl, tos, i%64)
		before := PacketECN(b)
		marked := MarkCE(b)
		if marked != before.Capable() {
			t.Fatalf("ECN %v: MarkCE = %v", before, marked)
		}
		want := before
		if marked {
			want = CE
		}
		if got := PacketECN(b); got != want {
			t.Fatalf("ECN %v after MarkCE, want %v", got, want)
		}
		if b[1]>>2 != tos>>2 {
			t.Fatalf("DSCP changed: %#x to %#x", tos, b[1])
		}
		if got, want := binary.BigEndian.Uint16(b[10:]), ipv4Checksum(b[:ihl*4]); got != want {
			t.Fatalf("header %x: checksum %#04x, want %#04x", b[:ihl*4], got, want)
		}
	}
}

// TestSetPacketECNChecksumEdges walks the header's checksum through the
// values where an incremental update can go wrong (RFC 1624 section 3:
// a sum that lands on 0x0000 or 0xffff).
func TestSetPacketECNChecksumEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[uint16]bool{}
	for range 200000 {
		b := ipv4WithChecksum(r, 5, byte(r.Uint32()), 0)
		sum := binary.BigEndian.Uint16(b[10:])
		if sum > 3 && sum < 0xfffc {
			continue
		}
		seen[sum] = true
		for e := NotECT; e <= CE; e++ {
			SetPacketECN(b, e)
			if got, want := binary.BigEndian.Uint16(b[10:]), ipv4Checksum(b[:20]); got != want {
				t.Fatalf("to %v from checksum %#04x: %#04x, want %#04x", e, sum, got, want)
			}
		}
	}
	if len(seen) < 4 {
		t.Fatalf("only %d edge checksums met; widen the search", len(seen))
	}
}

func TestSetPacketECNIPv6(t *testing.T) {
	b := ipv6(0, IPv6HeaderSize)
	b[0], b[1], b[2], b[3] = 0x6a, 0xbf, 0x12, 0x34 // traffic class 0xab, ECN 11, flow label 0xf1234
	for e := NotECT; e <= CE; e++ {
		if !SetPacketECN(b, e) {
			t.Fatal("SetPacketECN refused an IPv6 packet")
		}
		if got := PacketECN(b); got != e {
			t.Errorf("ECN %v, want %v", got, e)
		}
		tc := b[0]<<4 | b[1]>>4
		if tc>>2 != 0xab>>2 {
			t.Errorf("DSCP changed: traffic class %#x", tc)
		}
		if b[0]>>4 != 6 || b[1]&0x0f != 0x0f || b[2] != 0x12 || b[3] != 0x34 {
			t.Errorf("version or flow label changed: % x", b[:4])
		}
	}
}

func TestECNOfNonIP(t *testing.T) {
	for _, b := range [][]byte{nil, {0x45}, make([]byte, 19), {0x60, 0xff}, append([]byte{0x50}, make([]byte, 40)...)} {
		if got := PacketECN(b); got != NotECT {
			t.Errorf("% x: ECN %v", b, got)
		}
		if SetPacketECN(b, CE) || MarkCE(b) {
			t.Errorf("% x: set ECN on a non-IP packet", b)
		}
	}
}

func TestEncapsulateECN(t *testing.T) {
	for _, tc := range []struct{ inner, outer ECN }{
		{NotECT, NotECT},
		{ECT0, ECT0},
		{ECT1, ECT1},
		{CE, ECT0},
	} {
		if got := EncapsulateECN(tc.inner); got != tc.outer {
			t.Errorf("inner %v: outer %v, want %v", tc.inner, got, tc.outer)
		}
	}
}

// TestDecapsulateECN is RFC 6040's table (section 4.2, Figure 4), cell by
// cell.
func TestDecapsulateECN(t *testing.T) {
	const drop = ECN(0xff)
	table := map[ECN][4]ECN{ // inner → result by outer Not-ECT, ECT(0), ECT(1), CE
		NotECT: {NotECT, NotECT, NotECT, drop},
		ECT0:   {ECT0, ECT0, ECT1, CE},
		ECT1:   {ECT1, ECT1, ECT1, CE},
		CE:     {CE, CE, CE, CE},
	}
	for inner, row := range table {
		for i, outer := range []ECN{NotECT, ECT0, ECT1, CE} {
			got, dropped := DecapsulateECN(outer, inner)
			if dropped {
				got = drop
			}
			if got != row[i] {
				t.Errorf("inner %v, outer %v: %v, want %v", inner, outer, got, row[i])
			}
		}
	}
}
