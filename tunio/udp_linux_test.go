package tunio

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMmsghdrLayout(t *testing.T) {
	// struct mmsghdr on 64-bit Linux: a 56-byte msghdr, a uint32, padding.
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(mmsghdr{}) != 64 {
		t.Fatalf("sizeof mmsghdr = %d", unsafe.Sizeof(mmsghdr{}))
	}
}

type offloadMode struct {
	name       string
	send, recv UDPOptions
}

var offloadModes = []offloadMode{
	{"gso+gro", UDPOptions{}, UDPOptions{}},
	{"plain", UDPOptions{DisableGSO: true, DisableGRO: true}, UDPOptions{DisableGSO: true, DisableGRO: true}},
	{"gso only", UDPOptions{DisableGRO: true}, UDPOptions{DisableGRO: true}},
	{"gro only", UDPOptions{DisableGSO: true}, UDPOptions{DisableGSO: true}},
}

func listenT(t testing.TB, addr string, opts UDPOptions) UDPConn {
	t.Helper()
	c, err := ListenUDPOptions(netip.MustParseAddrPort(addr), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func makeMsgs(n, size int) []Datagram {
	msgs := make([]Datagram, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// mixedSizes is a batch that exercises GSO coalescing: runs of equal sizes,
// runs ending shorter, a longer one breaking a run, single odd sizes, and
// empty datagrams.
func mixedSizes() []int {
	var s []int
	for range 40 {
		s = append(s, 1312)
	}
	s = append(s, 100, 1312, 1312, 200, 200, 200, 1, 0, 1312, 1400, 32, 32, 32, 31, 1000)
	for i := range 70 { // more than maxGSOSegments of one size
		s = append(s, 148+i%1)
	}
	return s
}

// readAll reads want datagrams from c, failing after a timeout.
func readAll(t *testing.T, c UDPConn, want int, batch int) []Datagram {
	t.Helper()
	var got []Datagram
	done := make(chan error, 1)
	go func() {
		msgs := makeMsgs(batch, 2048)
		for len(got) < want {
			n, err := c.ReadBatch(msgs)
			if err != nil {
				done <- err
				return
			}
			for _, m := range msgs[:n] {
				got = append(got, Datagram{Buf: bytes.Clone(m.Buf[:m.N]), N: m.N, Addr: m.Addr, Local: m.Local})
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		c.Close()
		<-done
		t.Fatalf("got %d of %d datagrams", len(got), want)
	}
	return got
}

func TestUDPLoopback(t *testing.T) {
	nets := []struct {
		name       string
		recvAddr   string
		sendAddr   string
		dst        string // where the sender sends, %d the receiver's port
		wantSource string // address the receiver sees, without port
	}{
		{"ipv4", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:%d", "127.0.0.1"},
		{"ipv6", "[::1]:0", "[::1]:0", "[::1]:%d", "::1"},
		{"dual-stack receives ipv4", "[::]:0", "127.0.0.1:0", "127.0.0.1:%d", "127.0.0.1"},
		{"dual-stack sends ipv4", "127.0.0.1:0", "[::]:0", "127.0.0.1:%d", "127.0.0.1"},
		{"dual-stack v4-mapped destination", "127.0.0.1:0", "[::]:0", "[::ffff:127.0.0.1]:%d", "127.0.0.1"},
	}
	sizes := mixedSizes()
	for _, nt := range nets {
		for _, mode := range offloadModes {
			t.Run(nt.name+"/"+mode.name, func(t *testing.T) {
				recv := listenT(t, nt.recvAddr, mode.recv)
				send := listenT(t, nt.sendAddr, mode.send)
				dst := netip.MustParseAddrPort(fmt.Sprintf(nt.dst, recv.LocalAddr().Port()))
				out := makeMsgs(len(sizes), 2048)
				for i, n := range sizes {
					for j := range n {
						out[i].Buf[j] = byte(i * (j + 1))
					}
					out[i].N, out[i].Addr = n, dst
				}
				if err := send.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
				got := readAll(t, recv, len(out), 16)
				for i, g := range got {
					if !bytes.Equal(g.Buf, out[i].Buf[:out[i].N]) {
						t.Fatalf("datagram %d: got %d bytes, want %d", i, g.N, out[i].N)
					}
					if g.Addr.Addr().String() != nt.wantSource || g.Addr.Port() != send.LocalAddr().Port() {
						t.Fatalf("datagram %d from %v", i, g.Addr)
					}
				}
				gso, gro := send.(UDPOffloads).Offloads()
				t.Logf("sender gso=%v, receiver gro=%v", gso, func() bool { _, g := recv.(UDPOffloads).Offloads(); return g }())
				if mode.send.DisableGSO && gso || mode.recv.DisableGRO && gro {
					t.Fatal("offload on though disabled")
				}
			})
		}
	}
}

func TestUDPInterleavedDestinations(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			a := listenT(t, "127.0.0.1:0", mode.recv)
			b := listenT(t, "127.0.0.1:0", mode.recv)
			send := listenT(t, "127.0.0.1:0", mode.send)
			out := makeMsgs(60, 1312)
			for i := range out {
				out[i].N = 1312
				out[i].Buf[0] = byte(i)
				out[i].Addr = a.LocalAddr()
				if i%3 == 2 {
					out[i].Addr = b.LocalAddr()
				}
			}
			if err := send.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			ga, gb := readAll(t, a, 40, 7), readAll(t, b, 20, 7)
			for i, g := range ga {
				if want := byte(i/2*3 + i%2); g.Buf[0] != want || g.N != 1312 {
					t.Fatalf("a: datagram %d is %d, want %d", i, g.Buf[0], want)
				}
			}
			for i, g := range gb {
				if g.Buf[0] != byte(i*3+2) {
					t.Fatalf("b: datagram %d is %d", i, g.Buf[0])
				}
			}
		})
	}
}

func TestUDPBadDestination(t *testing.T) {
	recv := listenT(t, "127.0.0.1:0", UDPOptions{})
	send := listenT(t, "127.0.0.1:0", UDPOptions{})
	out := makeMsgs(3, 10)
	out[0].N, out[0].Addr = 10, recv.LocalAddr()
	out[1].N, out[1].Addr = 10, netip.MustParseAddrPort("[::1]:9") // v6 on a v4 socket
	out[2].N, out[2].Addr = 10, recv.LocalAddr()
	if err := send.WriteBatch(out); !errors.Is(err, ErrAddressFamily) {
		t.Fatalf("WriteBatch: %v", err)
	}
	if got := readAll(t, recv, 2, 4); len(got) != 2 {
		t.Fatalf("got %d datagrams", len(got))
	}
}

func TestUDPShortBuffer(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			recv := listenT(t, "127.0.0.1:0", mode.recv)
			send := listenT(t, "127.0.0.1:0", mode.send)
			out := makeMsgs(3, 500)
			for i := range out {
				out[i].N, out[i].Addr = 500, recv.LocalAddr()
			}
			out[2].N = 50
			for i := range 100 {
				out[0].Buf[i], out[1].Buf[i] = byte(i), byte(i)
			}
			send.WriteBatch(out)
			msgs := makeMsgs(3, 100)
			for got := 0; got < 3; {
				n, err := recv.ReadBatch(msgs[got:])
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
			if msgs[0].N != 0 || msgs[1].N != 0 || msgs[2].N != 50 {
				t.Fatalf("N = %d %d %d, want 0 0 50", msgs[0].N, msgs[1].N, msgs[2].N)
			}
			// The long ones say so, with their heads; the short one not.
			if !msgs[0].Trunc || !msgs[1].Trunc || msgs[2].Trunc {
				t.Fatalf("Trunc = %v %v %v, want true true false", msgs[0].Trunc, msgs[1].Trunc, msgs[2].Trunc)
			}
			for i := range 100 {
				if msgs[0].Buf[i] != byte(i) || msgs[1].Buf[i] != byte(i) {
					t.Fatalf("the head of a truncated datagram differs at byte %d", i)
				}
			}
		})
	}
}

func TestUDPCloseUnblocksRead(t *testing.T) {
	for _, mode := range offloadModes[:2] {
		t.Run(mode.name, func(t *testing.T) {
			c, err := ListenUDPOptions(netip.MustParseAddrPort("[::]:0"), mode.recv)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error)
			go func() {
				_, err := c.ReadBatch(makeMsgs(4, 100))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			c.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) || !IsClosed(err) {
					t.Fatalf("ReadBatch: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not unblock ReadBatch")
			}
			if _, err := c.ReadBatch(makeMsgs(1, 1)); !IsClosed(err) {
				t.Fatalf("ReadBatch after Close: %v", err)
			}
			if err := c.WriteBatch(makeMsgs(1, 1)); !IsClosed(err) {
				t.Fatalf("WriteBatch after Close: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

func TestUDPZeroAlloc(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			recv := listenT(t, "[::1]:0", mode.recv)
			send := listenT(t, "[::]:0", mode.send)
			assertBatchZeroAlloc(t, send, recv, recv.LocalAddr())
		})
	}
}

// assertBatchZeroAlloc fails t unless a WriteBatch of 32 datagrams of 1312
// bytes from send to to, and the ReadBatch calls on recv that take them
// in, allocate nothing.
func assertBatchZeroAlloc(t *testing.T, send, recv UDPConn, to netip.AddrPort) {
	t.Helper()
	out := makeMsgs(32, 1312)
	for i := range out {
		out[i].N, out[i].Addr = 1312, to
	}
	in := makeMsgs(32, 1312)
	allocs := testing.AllocsPerRun(200, func() {
		if err := send.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(out); {
			n, err := recv.ReadBatch(in)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func TestGROSegment(t *testing.T) {
	b := alignedBytes(2 * unix.CmsgSpace(4))
	put := func(off int, level, typ int32, v int32) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(4))
		*(*int32)(unsafe.Pointer(&b[off+unix.CmsgLen(0)])) = v
	}
	put(0, unix.SOL_IP, unix.IP_TOS, 7)
	put(unix.CmsgSpace(4), unix.SOL_UDP, unix.UDP_GRO, 1312)
	tests := []struct {
		name string
		b    []byte
		want int
	}{
		{"second cmsg", b, 1312},
		{"first only", b[:unix.CmsgSpace(4)], 0},
		{"empty", nil, 0},
		{"cut short", b[:unix.CmsgSpace(4)+4], 0},
	}
	for _, tt := range tests {
		if got := GROSegment(tt.b); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

// BenchmarkUDPLoopback moves batches over loopback; "/from" sends each
// datagram from a given local address (pktinfo), as the tunnel does once
// a peer has written to it.
func BenchmarkUDPLoopback(b *testing.B) {
	for _, mode := range offloadModes[:2] {
		for _, from := range []bool{false, true} {
			name := mode.name
			if from {
				name += "/from"
			}
			b.Run(name, func(b *testing.B) { benchmarkLoopback(b, mode, from) })
		}
	}
}

func benchmarkLoopback(b *testing.B, mode offloadMode, from bool) {
	recv := listenT(b, "127.0.0.1:0", mode.recv)
	send := listenT(b, "127.0.0.1:0", mode.send)
	out := makeMsgs(DefaultBatchSize, 1312)
	for i := range out {
		out[i].N, out[i].Addr = 1312, recv.LocalAddr()
		if from {
			out[i].Local = LocalFrom(netip.MustParseAddr("127.0.0.1"), 1)
		}
	}
	in := makeMsgs(DefaultBatchSize, 1312)
	b.SetBytes(1312 * DefaultBatchSize)
	b.ReportAllocs()
	for b.Loop() {
		send.WriteBatch(out)
		for got := 0; got < len(out); {
			n, _ := recv.ReadBatch(in)
			got += n
		}
	}
}

// TestUDPGROCoalesces checks that the offloads really engage on this
// kernel: a GSO send over loopback reaches a GRO socket in a few large
// buffers, which ReadBatch splits.
func TestUDPGROCoalesces(t *testing.T) {
	recv := listenT(t, "127.0.0.1:0", UDPOptions{})
	send := listenT(t, "127.0.0.1:0", UDPOptions{})
	gso, _ := send.(UDPOffloads).Offloads()
	_, gro := recv.(UDPOffloads).Offloads()
	if !gso || !gro {
		t.Skipf("kernel offers gso=%v gro=%v", gso, gro)
	}
	out := makeMsgs(100, 1312)
	for i := range out {
		out[i].N, out[i].Addr = 1312, recv.LocalAddr()
	}
	if err := send.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	in := makeMsgs(DefaultBatchSize, 1312)
	n, err := recv.ReadBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	r := &recv.(*udpConn).r
	if r.gn >= n || r.grecv[0].seg != 1312 {
		t.Fatalf("%d datagrams in %d buffers, segment %d: no coalescing", n, r.gn, r.grecv[0].seg)
	}
}
