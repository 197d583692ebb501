package noise

import (
	"bytes"
	"testing"

	"pipeguard/wire"
)

// TestSealToOpenToMatchInPlace checks that sealing and opening into
// another packet give exactly the bytes of the in-place calls, for inner
// sizes around the padding boundaries, and allocate nothing.
func TestSealToOpenToMatchInPlace(t *testing.T) {
	send, recv, _ := sealBench(t)
	for _, size := range []int{0, 1, 15, 16, 17, 100, 1279, 1280} {
		inner := make([]byte, size)
		for i := range inner {
			inner[i] = byte(i * 7)
		}
		a, src, dst := new(wire.Packet), new(wire.Packet), new(wire.Packet)
		a.SetInner(inner)
		src.SetInner(inner)
		dst.Buf[wire.InnerOffset+size] = 0xAA // padding must not come from dst
		counter, err := send.ReserveCounter()
		if err != nil {
			t.Fatal(err)
		}
		send.SealAt(a, counter)
		send.SealTo(dst, src, counter)
		if !bytes.Equal(a.Message(), dst.Message()) {
			t.Fatalf("size %d: SealTo differs from SealAt", size)
		}
		out := new(wire.Packet)
		if err := recv.OpenTo(out, dst, counter); err != nil {
			t.Fatalf("size %d: OpenTo: %v", size, err)
		}
		if err := recv.Open(a, counter); err != nil {
			t.Fatalf("size %d: Open: %v", size, err)
		}
		if !bytes.Equal(out.Inner(), a.Inner()) || !bytes.Equal(out.Inner()[:size], inner) {
			t.Fatalf("size %d: OpenTo gave %x, want %x", size, out.Inner(), a.Inner())
		}
		// A flipped ciphertext byte fails authentication out of place too.
		send.SealTo(dst, src, counter)
		dst.Buf[wire.InnerOffset] ^= 1
		if err := recv.OpenTo(out, dst, counter); err != ErrDecrypt {
			t.Fatalf("size %d: tampered message: %v, want ErrDecrypt", size, err)
		}
	}
	src, dst := new(wire.Packet), new(wire.Packet)
	src.SetInner(make([]byte, wire.MaxInnerSize))
	var counter uint64
	allocs := testing.AllocsPerRun(100, func() {
		counter, _ = send.ReserveCounter()
		src.InnerLen = wire.MaxInnerSize
		send.SealTo(dst, src, counter)
		if err := recv.OpenTo(src, dst, counter); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per SealTo+OpenTo", allocs)
	}
}

// TestPeekInnerMatchesOpen checks that PeekInner reveals exactly the first
// bytes Open decrypts, for inner sizes around one ChaCha20 block and the
// padding, never reads into the tag, returns nothing for a message too
// short or too long to be one, and allocates nothing.
func TestPeekInnerMatchesOpen(t *testing.T) {
	send, recv, _ := sealBench(t)
	for _, size := range []int{0, 1, 20, 40, 63, 64, 65, 100, 1280} {
		inner := make([]byte, size)
		for i := range inner {
			inner[i] = byte(i*13 + 1)
		}
		p := new(wire.Packet)
		p.SetInner(inner)
		counter, err := send.Seal(p)
		if err != nil {
			t.Fatal(err)
		}
		var peek [PeekSize]byte
		n := recv.PeekInner(&peek, p, counter)
		padded := int(p.MsgLen) - wire.InnerOffset - wire.TagSize
		if want := min(padded, PeekSize); n != want {
			t.Fatalf("size %d: peeked %d bytes, want %d", size, n, want)
		}
		opened := *p
		if err := recv.Open(&opened, counter); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(peek[:n], opened.Buf[wire.InnerOffset:wire.InnerOffset+n]) {
			t.Fatalf("size %d: peek %x, open %x", size, peek[:n], opened.Buf[wire.InnerOffset:wire.InnerOffset+n])
		}
		// Under another counter the bytes are noise, not the packet.
		if n >= 16 && recv.PeekInner(&peek, p, counter+1) == n && bytes.Equal(peek[:16], opened.Buf[wire.InnerOffset:wire.InnerOffset+16]) {
			t.Fatalf("size %d: peek under the wrong counter gave the plaintext", size)
		}
	}
	var peek [PeekSize]byte
	for _, msgLen := range []uint16{0, wire.MinTransportSize, wire.MaxMessageSize + 1} {
		p := &wire.Packet{MsgLen: msgLen}
		if n := recv.PeekInner(&peek, p, 0); n != 0 {
			t.Errorf("message of %d bytes: peeked %d", msgLen, n)
		}
	}
	p := new(wire.Packet)
	p.SetInner(make([]byte, wire.MaxInnerSize))
	counter, _ := send.Seal(p)
	if a := testing.AllocsPerRun(100, func() { recv.PeekInner(&peek, p, counter) }); a != 0 {
		t.Fatalf("%v allocations per PeekInner", a)
	}
}
