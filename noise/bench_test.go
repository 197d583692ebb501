package noise

import (
	"testing"
	"time"

	"pipeguard/wire"
)

// BenchmarkHandshake measures a complete handshake, both sides: create
// and consume the initiation, create and consume the response.
func BenchmarkHandshake(b *testing.B) {
	ini, resp := newPair(b, PresharedKey{}, PresharedKey{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		kpI, kpR := handshake(b, ini, resp, now)
		ini.table.Delete(kpI.LocalIndex)
		resp.table.Delete(kpR.LocalIndex)
	}
}

// sealBench returns two keypairs of one session and a packet with a full-size inner
// packet.
func sealBench(tb testing.TB) (send, recv *Keypair, p *wire.Packet) {
	ini, resp := newPair(tb, PresharedKey{}, PresharedKey{})
	send, recv = handshake(tb, ini, resp, t0)
	p = new(wire.Packet) // on the heap: a Packet on the stack would escape through cipher.AEAD
	if err := p.SetInner(make([]byte, wire.MaxInnerSize)); err != nil {
		tb.Fatal(err)
	}
	return send, recv, p
}

func BenchmarkSeal1280(b *testing.B) {
	kp, _, p := sealBench(b)
	b.SetBytes(wire.MaxInnerSize)
	b.ReportAllocs()
	for b.Loop() {
		p.InnerLen = wire.MaxInnerSize
		if _, err := kp.Seal(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1280(b *testing.B) {
	send, recv, p := sealBench(b)
	counter, err := send.Seal(p)
	if err != nil {
		b.Fatal(err)
	}
	sealed := *p
	b.SetBytes(wire.MaxInnerSize)
	b.ReportAllocs()
	for b.Loop() {
		*p = sealed // Open works in place
		if err := recv.Open(p, counter); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSealOpenZeroAllocs holds the design's invariant: no heap
// allocation per packet.
func TestSealOpenZeroAllocs(t *testing.T) {
	send, recv, p := sealBench(t)
	var counter uint64
	seal := testing.AllocsPerRun(100, func() {
		p.InnerLen = wire.MaxInnerSize
		counter, _ = send.Seal(p)
	})
	sealed := *p
	open := testing.AllocsPerRun(100, func() {
		*p = sealed
		if err := recv.Open(p, counter); err != nil {
			t.Fatal(err)
		}
	})
	if seal != 0 || open != 0 {
		t.Fatalf("allocations per packet: Seal %v, Open %v", seal, open)
	}
}

// BenchmarkPeekInner is what the inbound managed queue pays per transport
// message to learn its inner flow before opening it (against
// BenchmarkOpen1280 for the whole message).
func BenchmarkPeekInner(b *testing.B) {
	send, recv, p := sealBench(b)
	counter, err := send.Seal(p)
	if err != nil {
		b.Fatal(err)
	}
	var peek [PeekSize]byte
	b.ReportAllocs()
	for b.Loop() {
		recv.PeekInner(&peek, p, counter)
	}
}
