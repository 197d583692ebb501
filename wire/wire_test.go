package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"initiation", InitiationSize, 4 + 4 + 32 + 48 + 28 + 16 + 16},
		{"response", ResponseSize, 4 + 4 + 4 + 32 + 16 + 16 + 16},
		{"cookie reply", CookieReplySize, 4 + 4 + 24 + 32},
		{"transport header", TransportHeaderSize, 16},
		{"keepalive", MinTransportSize, 32},
		{"max message", MaxMessageSize, 1312},
		{"initiation MAC1", InitiationMAC1Offset, 116},
		{"initiation MAC2", InitiationMAC2Offset, 132},
		{"response MAC1", ResponseMAC1Offset, 60},
		{"response MAC2", ResponseMAC2Offset, 76},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// fill returns n bytes counting up from start.
func fill(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// TestLayout checks each field lands at the offset of the whitepaper's
// message layout (little-endian indices).
func TestLayout(t *testing.T) {
	in := Initiation{Sender: 0x04030201}
	copy(in.Ephemeral[:], fill(10, 32))
	copy(in.Static[:], fill(50, 48))
	copy(in.Timestamp[:], fill(100, 28))
	copy(in.MAC1[:], fill(150, 16))
	copy(in.MAC2[:], fill(200, 16))
	var ib [InitiationSize]byte
	in.Marshal(&ib)
	want := bytes.Join([][]byte{{1, 0, 0, 0, 1, 2, 3, 4}, fill(10, 32), fill(50, 48), fill(100, 28), fill(150, 16), fill(200, 16)}, nil)
	if !bytes.Equal(ib[:], want) {
		t.Fatalf("initiation layout\n got %x\nwant %x", ib, want)
	}

	r := Response{Sender: 0x01020304, Receiver: 0x05060708}
	copy(r.Ephemeral[:], fill(10, 32))
	copy(r.Empty[:], fill(50, 16))
	copy(r.MAC1[:], fill(100, 16))
	copy(r.MAC2[:], fill(150, 16))
	var rb [ResponseSize]byte
	r.Marshal(&rb)
	want = bytes.Join([][]byte{{2, 0, 0, 0, 4, 3, 2, 1, 8, 7, 6, 5}, fill(10, 32), fill(50, 16), fill(100, 16), fill(150, 16)}, nil)
	if !bytes.Equal(rb[:], want) {
		t.Fatalf("response layout\n got %x\nwant %x", rb, want)
	}

	c := CookieReply{Receiver: 0xaabbccdd}
	copy(c.Nonce[:], fill(10, 24))
	copy(c.Cookie[:], fill(50, 32))
	var cb [CookieReplySize]byte
	c.Marshal(&cb)
	want = bytes.Join([][]byte{{3, 0, 0, 0, 0xdd, 0xcc, 0xbb, 0xaa}, fill(10, 24), fill(50, 32)}, nil)
	if !bytes.Equal(cb[:], want) {
		t.Fatalf("cookie reply layout\n got %x\nwant %x", cb, want)
	}

	var hb [TransportHeaderSize]byte
	TransportHeader{Receiver: 0x01020304, Counter: 0x0102030405060708}.Marshal(hb[:])
	if want := []byte{4, 0, 0, 0, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1}; !bytes.Equal(hb[:], want) {
		t.Fatalf("transport header %x", hb)
	}

	// And back.
	var in2 Initiation
	var r2 Response
	var c2 CookieReply
	if in2.Unmarshal(ib[:]) != nil || in2 != in || r2.Unmarshal(rb[:]) != nil || r2 != r || c2.Unmarshal(cb[:]) != nil || c2 != c {
		t.Fatal("Unmarshal does not invert Marshal")
	}
}

func msgOf(typ byte, n int) []byte {
	b := make([]byte, n)
	if n > 0 {
		b[0] = typ
	}
	return b
}

func TestUnmarshalErrors(t *testing.T) {
	type parser struct {
		name  string
		typ   byte
		size  int
		parse func([]byte) error
	}
	parsers := []parser{
		{"initiation", 1, InitiationSize, func(b []byte) error { var m Initiation; return m.Unmarshal(b) }},
		{"response", 2, ResponseSize, func(b []byte) error { var m Response; return m.Unmarshal(b) }},
		{"cookie reply", 3, CookieReplySize, func(b []byte) error { var m CookieReply; return m.Unmarshal(b) }},
	}
	for _, p := range parsers {
		reserved := msgOf(p.typ, p.size)
		reserved[2] = 1
		tests := []struct {
			name string
			b    []byte
			want error
		}{
			{"valid", msgOf(p.typ, p.size), nil},
			{"empty", nil, ErrShort},
			{"3 bytes", msgOf(p.typ, 3), ErrShort},
			{"one short", msgOf(p.typ, p.size-1), ErrSize},
			{"one long", msgOf(p.typ, p.size+1), ErrSize},
			{"header only", msgOf(p.typ, 4), ErrSize},
			{"wrong type", msgOf(p.typ%4+1, p.size), ErrType},
			{"type 0", msgOf(0, p.size), ErrType},
			{"transport", msgOf(4, p.size), ErrType},
			{"reserved", reserved, ErrReserved},
		}
		for _, tt := range tests {
			if err := p.parse(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("%s %s: err = %v, want %v", p.name, tt.name, err, tt.want)
			}
		}
	}
}

func TestParseTransportHeader(t *testing.T) {
	valid := msgOf(4, MinTransportSize)
	copy(valid[4:], []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x80})
	reserved := msgOf(4, MinTransportSize)
	reserved[3] = 1
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"keepalive", valid, nil},
		{"max", msgOf(4, MaxMessageSize), nil},
		{"empty", nil, ErrShort},
		{"header only", msgOf(4, TransportHeaderSize), ErrShort},
		{"one short", msgOf(4, MinTransportSize-1), ErrShort},
		{"too large", msgOf(4, MaxMessageSize+1), ErrTooLarge},
		{"wrong type", msgOf(1, MinTransportSize), ErrType},
		{"reserved", reserved, ErrReserved},
	}
	for _, tt := range tests {
		h, err := ParseTransportHeader(tt.b)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if tt.name == "keepalive" && (h.Receiver != 1 || h.Counter != 0x8000000000000002) {
			t.Errorf("parsed %+v", h)
		}
	}
}

func TestPeekType(t *testing.T) {
	if typ, err := PeekType([]byte{3, 0, 0, 0, 9}); err != nil || typ != TypeCookieReply {
		t.Fatalf("PeekType = %v, %v", typ, err)
	}
	if _, err := PeekType([]byte{1, 0, 0}); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if _, err := PeekType([]byte{1, 0, 0, 1}); !errors.Is(err, ErrReserved) {
		t.Fatal(err)
	}
}

func TestPaddedLen(t *testing.T) {
	for _, tt := range []struct{ n, want int }{
		{0, 0}, {1, 16}, {15, 16}, {16, 16}, {17, 32}, {20, 32},
		{1264, 1264}, {1265, 1280}, {1279, 1280}, {1280, 1280}, {1281, 1280}, {1500, 1280},
	} {
		if got := PaddedLen(tt.n); got != tt.want {
			t.Errorf("PaddedLen(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestPacket(t *testing.T) {
	var p Packet
	for i := range p.Buf {
		p.Buf[i] = 0xff // garbage that padding must overwrite
	}
	if err := p.SetInner([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	padded := p.Pad()
	if want := append([]byte{1, 2, 3}, make([]byte, 13)...); !bytes.Equal(padded, want) || p.InnerLen != 16 {
		t.Fatalf("Pad = %x", padded)
	}
	if &padded[0] != &p.Buf[InnerOffset] {
		t.Fatal("Pad does not return the inner slot")
	}
	if err := p.SetInner(make([]byte, MaxInnerSize+1)); !errors.Is(err, ErrTooLarge) || p.InnerLen != 16 {
		t.Fatal("oversized inner packet accepted or p changed")
	}
	if err := p.SetMessage(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrTooLarge) || p.MsgLen != 0 {
		t.Fatal("oversized message accepted or p changed")
	}
	if err := p.SetMessage([]byte{4, 0, 0, 0}); err != nil || !bytes.Equal(p.Message(), []byte{4, 0, 0, 0}) {
		t.Fatal("SetMessage")
	}
	var empty Packet
	if len(empty.Pad()) != 0 {
		t.Fatal("a keepalive got padding")
	}
}

func ipv4(total int, ihl byte, n int) []byte {
	b := make([]byte, max(n, IPv4HeaderMinSize))
	b[0] = 0x40 | ihl
	b[2], b[3] = byte(total>>8), byte(total)
	copy(b[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	return b[:n]
}

func ipv6(payload int, n int) []byte {
	b := make([]byte, max(n, IPv6HeaderSize))
	b[0] = 0x60
	b[4], b[5] = byte(payload>>8), byte(payload)
	b[23] = 1
	b[39] = 2
	return b[:n]
}

func TestPeekIP(t *testing.T) {
	v4src, v4dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6src, v6dst := netip.MustParseAddr("::1"), netip.MustParseAddr("::2")
	tests := []struct {
		name     string
		b        []byte
		want     error
		version  int
		len      int
		src, dst netip.Addr
	}{
		{"v4", ipv4(20, 5, 20), nil, 4, 20, v4src, v4dst},
		{"v4 padded", ipv4(21, 5, 32), nil, 4, 21, v4src, v4dst},
		{"v4 options", ipv4(60, 15, 60), nil, 4, 60, v4src, v4dst},
		{"v4 ihl < 5", ipv4(20, 4, 20), ErrNotIP, 0, 0, netip.Addr{}, netip.Addr{}},
		{"v4 total < ihl", ipv4(20, 6, 24), ErrNotIP, 0, 0, netip.Addr{}, netip.Addr{}},
		{"v4 truncated header", ipv4(20, 5, 19), ErrIPTruncated, 0, 0, netip.Addr{}, netip.Addr{}},
		{"v4 truncated body", ipv4(100, 5, 99), ErrIPTruncated, 0, 0, netip.Addr{}, netip.Addr{}},
		{"v6", ipv6(0, 40), nil, 6, 40, v6src, v6dst},
		{"v6 padded", ipv6(8, 64), nil, 6, 48, v6src, v6dst},
		{"v6 truncated header", ipv6(0, 39), ErrIPTruncated, 0, 0, netip.Addr{}, netip.Addr{}},
		{"v6 truncated body", ipv6(100, 139), ErrIPTruncated, 0, 0, netip.Addr{}, netip.Addr{}},
		{"empty", nil, ErrNotIP, 0, 0, netip.Addr{}, netip.Addr{}},
		{"version 5", []byte{0x50, 0, 0, 20}, ErrNotIP, 0, 0, netip.Addr{}, netip.Addr{}},
		{"version 0", make([]byte, 40), ErrNotIP, 0, 0, netip.Addr{}, netip.Addr{}},
	}
	for _, tt := range tests {
		h, err := PeekIP(tt.b)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && (h.Version != tt.version || h.Len != tt.len || h.Src != tt.src || h.Dst != tt.dst) {
			t.Errorf("%s: %+v", tt.name, h)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	b := ipv4(20, 5, 20)
	var p Packet
	if n := testing.AllocsPerRun(100, func() {
		PeekIP(b)
		p.SetInner(b)
		p.Pad()
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
