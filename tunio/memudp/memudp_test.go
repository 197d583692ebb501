package memudp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/tunio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t testing.TB, n *Network, s string) *Conn {
	t.Helper()
	c, err := n.Listen(netip.MustParseAddrPort(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func datagrams(count, size int) []tunio.Datagram {
	msgs := make([]tunio.Datagram, count)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

func TestDeliver(t *testing.T) {
	tests := []struct {
		name     string
		from, to string // listen addresses
		dst      string // address sent to
		want     string // source the receiver sees
	}{
		{"v4", "10.0.0.1:1000", "10.0.0.2:2000", "10.0.0.2:2000", "10.0.0.1:1000"},
		{"v6", "[fd00::1]:1000", "[fd00::2]:2000", "[fd00::2]:2000", "[fd00::1]:1000"},
		{"v4-mapped destination", "10.0.0.1:1000", "10.0.0.2:2000", "[::ffff:10.0.0.2]:2000", "10.0.0.1:1000"},
		{"v4 wildcard", "10.0.0.1:1000", "0.0.0.0:2000", "10.9.9.9:2000", "10.0.0.1:1000"},
		{"dual-stack wildcard", "10.0.0.1:1000", "[::]:2000", "10.9.9.9:2000", "10.0.0.1:1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNetwork()
			a, b := listen(t, n, tt.from), listen(t, n, tt.to)
			out := datagrams(3, 100)
			for i := range out {
				out[i].N = 10 + i
				out[i].Buf[0] = byte(i)
				out[i].Addr = netip.MustParseAddrPort(tt.dst)
			}
			if err := a.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			in := datagrams(8, 100)
			nr, err := b.ReadBatch(in)
			if err != nil || nr != 3 {
				t.Fatalf("ReadBatch = %d, %v", nr, err)
			}
			for i := range nr {
				if in[i].N != 10+i || in[i].Buf[0] != byte(i) || in[i].Addr.String() != tt.want {
					t.Fatalf("datagram %d: N %d, first byte %d, from %v", i, in[i].N, in[i].Buf[0], in[i].Addr)
				}
			}
		})
	}
}

// TestECNAndTryRead: each datagram arrives with the ECN it was sent with,
// as over a real network, and TryReadBatch reads what is there without
// waiting for more.
func TestECNAndTryRead(t *testing.T) {
	n := NewNetwork()
	a, b := listen(t, n, "10.0.0.1:1000"), listen(t, n, "10.0.0.2:2000")
	in := datagrams(8, 100)
	if k, err := b.TryReadBatch(in); k != 0 || err != nil {
		t.Fatalf("TryReadBatch on an empty queue = %d, %v", k, err)
	}
	out := datagrams(6, 100)
	for i := range out {
		out[i].N, out[i].Buf[0], out[i].ECN = 10, byte(i), uint8(i%4)
		out[i].Addr = b.LocalAddr()
	}
	out[2].N = 1 << 20 // too long: dropped, and the metas after it stay in step
	if err := a.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	k, err := b.TryReadBatch(in)
	if err != nil || k != 5 {
		t.Fatalf("TryReadBatch = %d, %v", k, err)
	}
	for _, m := range in[:k] {
		if want := m.Buf[0] % 4; m.ECN != want {
			t.Errorf("datagram %d: ECN %d, want %d", m.Buf[0], m.ECN, want)
		}
	}
	b.Close()
	if _, err := b.TryReadBatch(in); !tunio.IsClosed(err) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestDrops(t *testing.T) {
	n := NewNetworkConfig(Config{QueueLen: 4, MaxDatagramSize: 100})
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	out := datagrams(6, 200)
	for i := range out {
		out[i].N = 50
		out[i].Addr = b.LocalAddr()
	}
	out[1].N = 101 // too long
	if err := a.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	// 5 of the right size, 4 fit the queue.
	if b.Dropped() != 1 || n.Dropped() != 1 || b.Queued() != 4 {
		t.Fatalf("conn dropped %d, network dropped %d, queued %d", b.Dropped(), n.Dropped(), b.Queued())
	}
	out[0].Addr = netip.MustParseAddrPort("10.0.0.3:3") // nobody there
	a.WriteBatch(out[:1])
	if n.Dropped() != 2 {
		t.Fatalf("network dropped %d", n.Dropped())
	}
	// A short read buffer reports N == 0.
	in := datagrams(4, 10)
	nr, _ := b.ReadBatch(in)
	for i := range nr {
		if in[i].N != 0 || !in[i].Trunc {
			t.Fatalf("truncated datagram reported N=%d Trunc=%v", in[i].N, in[i].Trunc)
		}
	}
}

func TestListen(t *testing.T) {
	n := NewNetwork()
	a := listen(t, n, "10.0.0.1:0")
	b := listen(t, n, "10.0.0.1:0")
	if a.LocalAddr().Port() == 0 || a.LocalAddr() == b.LocalAddr() {
		t.Fatalf("ports %v %v", a.LocalAddr(), b.LocalAddr())
	}
	if _, err := n.Listen(a.LocalAddr()); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	a.Close()
	c := listen(t, n, a.LocalAddr().String())
	if c.LocalAddr() != a.LocalAddr() {
		t.Fatal("address not freed by Close")
	}
	if _, err := n.Listen(netip.AddrPort{}); !errors.Is(err, ErrInvalidAddr) {
		t.Fatalf("invalid Listen: %v", err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	n := NewNetworkConfig(Config{QueueLen: 1, Block: true})
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	var wg sync.WaitGroup
	readErr, writeErr := make(chan error, 1), make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := a.ReadBatch(datagrams(1, 10))
		readErr <- err
	}()
	go func() {
		// The second datagram waits for room at b, until a closes.
		defer wg.Done()
		out := datagrams(2, 10)
		out[0].Addr, out[1].Addr = b.LocalAddr(), b.LocalAddr()
		writeErr <- a.WriteBatch(out)
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	wg.Wait()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("WriteBatch: %v (the blocked datagram counts as dropped)", err)
	}
	if b.Dropped()+n.Dropped() != 1 {
		t.Fatalf("dropped %d+%d, want 1", b.Dropped(), n.Dropped())
	}
	if err := a.WriteBatch(datagrams(1, 1)); !tunio.IsClosed(err) {
		t.Fatalf("WriteBatch after Close: %v", err)
	}
}

func TestBlockIsLossless(t *testing.T) {
	n := NewNetworkConfig(Config{QueueLen: 3, Block: true})
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	const total = 1000
	go func() {
		out := datagrams(7, 8)
		for i := 0; i < total; i += len(out) {
			for j := range out {
				out[j].N = 8
				out[j].Buf[0] = byte(i + j)
				out[j].Addr = b.LocalAddr()
			}
			a.WriteBatch(out[:min(len(out), total-i)])
		}
	}()
	in := datagrams(5, 8)
	for got := 0; got < total; {
		nr, err := b.ReadBatch(in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range nr {
			if in[i].Buf[0] != byte(got) {
				t.Fatalf("datagram %d out of order", got)
			}
			got++
		}
	}
	if b.Dropped() != 0 {
		t.Fatal("dropped in Block mode")
	}
}

func TestZeroAlloc(t *testing.T) {
	n := NewNetwork()
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "[fd00::2]:2")
	out := datagrams(32, 1312)
	for i := range out {
		out[i].N = 1312
		out[i].Addr = b.LocalAddr()
		if i%2 == 1 {
			out[i].Local = tunio.LocalFrom(netip.MustParseAddr("fd00::5"), IfIndex)
		}
	}
	in := datagrams(32, 1312)
	allocs := testing.AllocsPerRun(500, func() {
		if err := a.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(out); {
			nr, err := b.ReadBatch(in)
			if err != nil {
				t.Fatal(err)
			}
			got += nr
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	if !bytes.Equal(in[0].Buf[:in[0].N], out[0].Buf[:out[0].N]) {
		t.Fatal("payload differs")
	}
}

// BenchmarkWriteRead moves batches between two Conns, the datagrams
// without and with a Local to send from (as a tunnel answering its peers
// sends them).
func BenchmarkWriteRead(b *testing.B) {
	for _, local := range []bool{false, true} {
		b.Run(fmt.Sprintf("local=%v", local), func(b *testing.B) {
			n := NewNetwork()
			x, y := listen(b, n, "10.0.0.1:1"), listen(b, n, "10.0.0.2:2")
			out := datagrams(tunio.DefaultBatchSize, 1312)
			for i := range out {
				out[i].N = 1312
				out[i].Addr = y.LocalAddr()
				if local {
					out[i].Local = tunio.LocalFrom(netip.MustParseAddr("10.0.0.1"), IfIndex)
				}
			}
			in := datagrams(tunio.DefaultBatchSize, 1312)
			b.SetBytes(1312 * tunio.DefaultBatchSize)
			b.ReportAllocs()
			for b.Loop() {
				x.WriteBatch(out)
				for got := 0; got < len(out); {
					nr, _ := y.ReadBatch(in)
					got += nr
				}
			}
		})
	}
}

// TestLocal: a Conn on a wildcard address learns which address each
// datagram was sent to, and a reply sent with that Local leaves from it.
func TestLocal(t *testing.T) {
	tests := []struct {
		name       string
		host, peer string // listen addresses
		to         string // host address the peer writes to
		want       string // the Local the host reads, and the reply's source
	}{
		{"v4 wildcard, second address", "0.0.0.0:51820", "10.0.0.9:1", "10.0.0.2", "10.0.0.2"},
		{"dual-stack wildcard, v4", "[::]:51820", "10.0.0.9:1", "10.0.0.3", "10.0.0.3"},
		{"dual-stack wildcard, v4-mapped", "[::]:51820", "10.0.0.9:1", "::ffff:10.0.0.3", "10.0.0.3"},
		{"dual-stack wildcard, v6", "[::]:51820", "[fd00::9]:1", "fd00::3", "fd00::3"},
		{"concrete address", "10.0.0.1:51820", "10.0.0.9:1", "10.0.0.1", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNetwork()
			host, peer := listen(t, n, tt.host), listen(t, n, tt.peer)
			out := datagrams(1, 10)
			out[0].N, out[0].Addr = 10, netip.AddrPortFrom(netip.MustParseAddr(tt.to), 51820)
			if err := peer.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			in := datagrams(1, 10)
			if _, err := host.ReadBatch(in); err != nil {
				t.Fatal(err)
			}
			want := netip.MustParseAddr(tt.want)
			if in[0].Local != tunio.LocalFrom(want, IfIndex) {
				t.Fatalf("local %v, want %v", in[0].Local, want)
			}
			reply := datagrams(1, 10)
			reply[0].N, reply[0].Addr, reply[0].Local = 10, in[0].Addr, in[0].Local
			if err := host.WriteBatch(reply); err != nil || reply[0].LocalGone {
				t.Fatalf("reply: %v, LocalGone %v", err, reply[0].LocalGone)
			}
			if _, err := peer.ReadBatch(in); err != nil {
				t.Fatal(err)
			}
			if in[0].Addr != netip.AddrPortFrom(want, 51820) {
				t.Fatalf("reply from %v, want %v:51820", in[0].Addr, want)
			}
		})
	}
}

// TestRemoveAddr: a removed address receives nothing, and a datagram sent
// from it leaves from the sender's own address, marked LocalGone; AddAddr
// gives it back.
func TestRemoveAddr(t *testing.T) {
	n := NewNetwork()
	host, peer := listen(t, n, "10.0.0.1:51820"), listen(t, n, "10.0.0.9:1")
	gone := netip.MustParseAddr("10.0.0.2")
	n.RemoveAddr(gone)
	out := datagrams(3, 10)
	for i := range out {
		out[i].N, out[i].Addr = 10, peer.LocalAddr()
	}
	out[1].Local = tunio.LocalFrom(gone, IfIndex)
	out[2].Local = tunio.LocalFrom(netip.MustParseAddr("10.0.0.3"), IfIndex)
	if err := host.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	if out[0].LocalGone || !out[1].LocalGone || out[2].LocalGone {
		t.Fatalf("LocalGone %v %v %v, want only the second", out[0].LocalGone, out[1].LocalGone, out[2].LocalGone)
	}
	in := datagrams(3, 10)
	if nr, err := peer.ReadBatch(in); err != nil || nr != 3 {
		t.Fatalf("ReadBatch = %d, %v", nr, err)
	}
	for i, want := range []string{"10.0.0.1", "10.0.0.1", "10.0.0.3"} {
		if in[i].Addr.Addr().String() != want {
			t.Fatalf("datagram %d from %v, want %s", i, in[i].Addr, want)
		}
	}

	wild := listen(t, n, "0.0.0.0:7")
	to := datagrams(1, 10)
	to[0].N, to[0].Addr = 10, netip.AddrPortFrom(gone, 7)
	peer.WriteBatch(to)
	if wild.Queued() != 0 || n.Dropped() != 1 {
		t.Fatalf("to a removed address: queued %d, network dropped %d", wild.Queued(), n.Dropped())
	}
	n.AddAddr(gone)
	peer.WriteBatch(to)
	if wild.Queued() != 1 {
		t.Fatal("AddAddr did not give the address back")
	}
}

// TestRouteSources: a wildcard Conn sends from the route source of the
// destination's family, unless a datagram has a Local.
func TestRouteSources(t *testing.T) {
	n := NewNetwork()
	host := listen(t, n, "[::]:51820")
	p4, p6 := listen(t, n, "10.0.0.9:1"), listen(t, n, "[fd00::9]:1")
	send := func(to netip.AddrPort, local string) {
		t.Helper()
		out := datagrams(1, 10)
		out[0].N, out[0].Addr = 10, to
		if local != "" {
			out[0].Local = tunio.LocalFrom(netip.MustParseAddr(local), IfIndex)
		}
		if err := host.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
	}
	from := func(c *Conn) string {
		t.Helper()
		in := datagrams(1, 10)
		if _, err := c.ReadBatch(in); err != nil {
			t.Fatal(err)
		}
		return in[0].Addr.Addr().String()
	}
	send(p4.LocalAddr(), "")
	if got := from(p4); got != "::" {
		t.Fatalf("without route sources, from %s", got)
	}
	host.SetRouteSources(netip.MustParseAddr("fd00::1"), netip.MustParseAddr("::ffff:10.0.0.1"))
	send(p4.LocalAddr(), "")
	send(p6.LocalAddr(), "")
	if f4, f6 := from(p4), from(p6); f4 != "10.0.0.1" || f6 != "fd00::1" {
		t.Fatalf("from %s and %s", f4, f6)
	}
	send(p4.LocalAddr(), "10.0.0.2")
	if got := from(p4); got != "10.0.0.2" {
		t.Fatalf("with a Local, from %s", got)
	}
}
