package tunio_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pipeguard/tunio"
	"pipeguard/tunio/memudp"
)

// rebindPair is a RebindConn at 192.0.2.1 and a plain peer socket at
// 192.0.2.2:7, on one in-memory network.
func rebindPair(t *testing.T, port uint16) (*memudp.Network, *tunio.RebindConn, *memudp.Conn) {
	t.Helper()
	n := memudp.NewNetworkConfig(memudp.Config{Block: true})
	r, err := tunio.NewRebindConn(n.ListenFunc(netip.MustParseAddr("192.0.2.1")), port, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := n.Listen(netip.MustParseAddrPort("192.0.2.2:7"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); peer.Close() })
	return n, r, peer
}

func seqDatagram(seq uint32, to netip.AddrPort) tunio.Datagram {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, seq)
	return tunio.Datagram{Buf: b, N: 4, Addr: to}
}

// TestRebindConnMovesReader: a ReadBatch blocked on the old socket when
// the rebind happens goes on reading the new one, without an error; the
// old port is free again.
func TestRebindConnMovesReader(t *testing.T) {
	n, r, peer := rebindPair(t, 51820)
	got := make(chan error, 1)
	var msg [1]tunio.Datagram
	msg[0].Buf = make([]byte, 16)
	go func() {
		_, err := r.ReadBatch(msg[:])
		got <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block
	if err := r.Rebind(51821, 0); err != nil {
		t.Fatal(err)
	}
	if r.LocalAddr().Port() != 51821 {
		t.Fatalf("LocalAddr %v after rebinding to 51821", r.LocalAddr())
	}
	if err := peer.WriteBatch([]tunio.Datagram{seqDatagram(7, r.LocalAddr())}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil || msg[0].N != 4 || binary.BigEndian.Uint32(msg[0].Buf) != 7 {
			t.Fatalf("ReadBatch across the rebind: %v, %d bytes", err, msg[0].N)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the reader did not move to the new socket")
	}
	// The old port is free: another socket may take it.
	c, err := n.Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatalf("old port still taken: %v", err)
	}
	c.Close()
	// Port 0: a free port of the network's choosing.
	if err := r.Rebind(0, 0); err != nil || r.LocalAddr().Port() == 51821 || r.LocalAddr().Port() == 0 {
		t.Fatalf("Rebind(0): %v, now at %v", err, r.LocalAddr())
	}
}

// TestRebindConnTakenPort: a taken port is an error and the old socket
// stays, working, with its mark.
func TestRebindConnTakenPort(t *testing.T) {
	n, r, peer := rebindPair(t, 51820)
	if err := r.SetMark(9); err != nil {
		t.Fatal(err)
	}
	other, err := n.Listen(netip.MustParseAddrPort("192.0.2.1:51821"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := r.Rebind(51821, 10); !errors.Is(err, memudp.ErrAddrInUse) {
		t.Fatalf("Rebind to a taken port: %v", err)
	}
	if r.LocalAddr().Port() != 51820 || r.Mark() != 9 {
		t.Fatalf("after a failed rebind: %v, mark %d", r.LocalAddr(), r.Mark())
	}
	if err := peer.WriteBatch([]tunio.Datagram{seqDatagram(1, r.LocalAddr())}); err != nil {
		t.Fatal(err)
	}
	msgs := []tunio.Datagram{{Buf: make([]byte, 16)}}
	if k, err := r.ReadBatch(msgs); err != nil || k != 1 {
		t.Fatalf("old socket after a failed rebind: %d, %v", k, err)
	}
}

// TestRebindConnSamePort: rebinding to the port in use keeps the socket
// (nothing queued is lost) and changes only the mark; the mark carries
// over to the sockets later rebinds open.
func TestRebindConnSamePort(t *testing.T) {
	_, r, peer := rebindPair(t, 51820)
	if err := peer.WriteBatch([]tunio.Datagram{seqDatagram(1, r.LocalAddr())}); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebind(51820, 5); err != nil {
		t.Fatal(err)
	}
	msgs := []tunio.Datagram{{Buf: make([]byte, 16)}}
	if k, err := r.ReadBatch(msgs); err != nil || k != 1 {
		t.Fatalf("datagram queued before a same-port rebind: %d, %v", k, err)
	}
	if r.Mark() != 5 {
		t.Fatalf("mark %d, want 5", r.Mark())
	}
	if err := r.Rebind(51822, r.Mark()); err != nil {
		t.Fatal(err)
	}
	if r.Mark() != 5 {
		t.Fatalf("mark %d after a rebind, want 5", r.Mark())
	}
	if err := r.SetMark(0); err != nil || r.Mark() != 0 {
		t.Fatalf("SetMark(0): %v, mark %d", err, r.Mark())
	}
}

// TestRebindConnWriterAcrossRebinds: a writer sending without pause
// while the socket is rebound again and again never sees an error, and
// its datagrams arrive in order, never twice. (A batch that meets the
// old socket closing may lose its tail here, as the in-memory network
// drops what a closing sender had not delivered; a kernel socket
// finishes the send in flight, and the batch may then go out twice.)
func TestRebindConnWriterAcrossRebinds(t *testing.T) {
	_, r, peer := rebindPair(t, 51820)
	const total = 20000
	stop, rebinderDone := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 2)
	go func() {
		defer close(rebinderDone)
		for port := uint16(51821); ; port++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Rebind(port, 0); err != nil {
				errc <- err
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		batch := make([]tunio.Datagram, 8)
		for seq := uint32(0); seq < total; seq += uint32(len(batch)) {
			for i := range batch {
				batch[i] = seqDatagram(seq+uint32(i), peer.LocalAddr())
			}
			if err := r.WriteBatch(batch); err != nil {
				errc <- err
				return
			}
		}
		// The end marker, once the socket stays put.
		close(stop)
		<-rebinderDone
		if err := r.WriteBatch([]tunio.Datagram{seqDatagram(total, peer.LocalAddr())}); err != nil {
			errc <- err
		}
	})
	msgs := make([]tunio.Datagram, 64)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 16)
	}
	next, got := uint32(0), 0
	for next <= total {
		k, err := peer.ReadBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs[:k] {
			s := binary.BigEndian.Uint32(m.Buf)
			if s < next {
				t.Fatalf("seq %d after %d: reordered or duplicated", s, next-1)
			}
			next, got = s+1, got+1
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("%d of %d datagrams arrived across the rebinds", got-1, total)
	if got < total/2 {
		t.Errorf("only %d of %d datagrams arrived", got-1, total)
	}
}

// TestRebindConnClose: Close ends a blocked ReadBatch with ErrClosed (not
// a retry), and later calls fail the same way.
func TestRebindConnClose(t *testing.T) {
	_, r, _ := rebindPair(t, 51820)
	got := make(chan error, 1)
	go func() {
		_, err := r.ReadBatch([]tunio.Datagram{{Buf: make([]byte, 16)}})
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	select {
	case err := <-got:
		if !tunio.IsClosed(err) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end ReadBatch")
	}
	if err := r.Rebind(0, 0); !tunio.IsClosed(err) {
		t.Errorf("Rebind after Close: %v", err)
	}
	if err := r.WriteBatch([]tunio.Datagram{seqDatagram(1, netip.MustParseAddrPort("192.0.2.2:7"))}); !tunio.IsClosed(err) {
		t.Errorf("WriteBatch after Close: %v", err)
	}
}
