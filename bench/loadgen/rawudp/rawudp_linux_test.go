package rawudp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/tunio"
	"pipeguard/wire"
)

// rawPair is two of the generator's sockets on loopback.
func rawPair(t *testing.T, pause time.Duration) (a, b *Conn) {
	t.Helper()
	var err error
	if a, err = New(netip.MustParseAddrPort("127.0.0.1:0"), 4<<20, pause); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if b, err = New(netip.MustParseAddrPort("127.0.0.1:0"), 4<<20, pause); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// within closes s after a while, so that a receive waiting for datagrams
// that never come fails the test instead of hanging it; stop the timer
// it returns.
func within(s *Conn) *time.Timer {
	return time.AfterFunc(5*time.Second, func() { s.Close() })
}

// numbered returns n datagrams of size bytes to dst, each carrying its
// number from first on.
func numbered(n, size int, first uint32, dst netip.AddrPort) []tunio.Datagram {
	msgs := make([]tunio.Datagram, n)
	for i := range msgs {
		b := make([]byte, size)
		binary.BigEndian.PutUint32(b, first+uint32(i))
		msgs[i] = tunio.Datagram{Buf: b, N: size, Addr: dst}
	}
	return msgs
}

// TestRawUDP sends runs of datagrams between two of the generator's
// sockets on loopback: with GSO (one segmented send per run), they arrive
// whole, in order, each once, from the sender, through ReadViews (in
// place, GRO runs split) and through ReadBatch (copied, leftovers kept);
// a batch to two destinations, of two sizes, reaches each destination
// with its own datagrams.
func TestRawUDP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := rawPair(t, time.Millisecond)
	if gso, gro := a.Offloads(); !gro {
		t.Fatalf("offloads: GSO %v, GRO %v", gso, gro)
	}
	const n, size = 300, messageSize
	if err := a.WriteBatch(numbered(n, size, 0, b.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	next := uint32(0)
	timer := within(b)
	for next < n {
		if _, err := b.ReadViews(func(d []byte, from netip.AddrPort) {
			if len(d) != size || binary.BigEndian.Uint32(d) != next || from != a.LocalAddr() {
				t.Fatalf("datagram %d: %d bytes, number %d, from %v", next, len(d), binary.BigEndian.Uint32(d), from)
			}
			next++
		}); err != nil {
			t.Fatalf("received %d of %d: %v", next, n, err)
		}
	}
	timer.Stop()

	// ReadBatch, into buffers smaller than a GRO run.
	if err := a.WriteBatch(numbered(n, size, 1000, b.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	msgs := make([]tunio.Datagram, 16)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	timer = within(b)
	for got := uint32(0); got < n; {
		k, err := b.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("received %d of %d: %v", got, n, err)
		}
		for _, m := range msgs[:k] {
			if m.N != size || m.Trunc || binary.BigEndian.Uint32(m.Buf) != 1000+got || m.Addr != a.LocalAddr() {
				t.Fatalf("datagram %d: %d bytes (trunc %v), number %d, from %v", got, m.N, m.Trunc, binary.BigEndian.Uint32(m.Buf), m.Addr)
			}
			got++
		}
	}
	timer.Stop()

	// Two destinations and two sizes in one batch.
	c, err := New(netip.MustParseAddrPort("127.0.0.1:0"), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mixed := append(numbered(70, 100, 0, b.LocalAddr()), numbered(70, 200, 0, c.LocalAddr())...)
	mixed = append(mixed, numbered(70, 300, 70, b.LocalAddr())...)
	if err := a.WriteBatch(mixed); err != nil {
		t.Fatal(err)
	}
	recv := func(s *Conn, want int) []int {
		var sizes []int
		defer within(s).Stop()
		for len(sizes) < want {
			if _, err := s.ReadViews(func(d []byte, _ netip.AddrPort) {
				if int(binary.BigEndian.Uint32(d)) != len(sizes) {
					t.Errorf("datagram %d carries %d", len(sizes), binary.BigEndian.Uint32(d))
				}
				sizes = append(sizes, len(d))
			}); err != nil {
				t.Errorf("received %d of %d: %v", len(sizes), want, err)
				break
			}
		}
		return sizes
	}
	if sizes := recv(b, 140); len(sizes) != 140 || sizes[0] != 100 || sizes[69] != 100 || sizes[70] != 300 || sizes[139] != 300 {
		t.Errorf("b received %d: %v", len(sizes), sizes)
	}
	if sizes := recv(c, 70); len(sizes) != 70 || sizes[0] != 200 || sizes[69] != 200 {
		t.Errorf("c received %d: %v", len(sizes), sizes)
	}
}

// TestRawUDPClose: Close unblocks a receive waiting for datagrams, within
// the poll bound, with a closed error; calls after it fail the same way;
// a second Close is harmless.
func TestRawUDPClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := rawPair(t, 0)
	done := make(chan error, 1)
	go func() {
		_, err := b.ReadViews(func([]byte, netip.AddrPort) {})
		done <- err
	}()
	time.Sleep(3 * rawPollWait) // it waits in poll
	begin := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !tunio.IsClosed(err) {
			t.Errorf("the waiting receive returned %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not unblock the receive")
	}
	if took := time.Since(begin); took > 10*rawPollWait {
		t.Errorf("Close took %v", took)
	}
	if _, err := b.ReadViews(func([]byte, netip.AddrPort) {}); !tunio.IsClosed(err) {
		t.Errorf("receive after Close: %v", err)
	}
	if err := b.WriteBatch(numbered(1, 10, 0, a.LocalAddr())); !tunio.IsClosed(err) {
		t.Errorf("send after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// messageSize is a sealed transport message of a full inner packet, as
// the generator sends them.
const messageSize = wire.TransportHeaderSize + wire.MaxInnerSize + wire.TagSize
