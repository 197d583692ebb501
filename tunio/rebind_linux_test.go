package tunio

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func rebindableT(t *testing.T, addr string, opts UDPOptions) *RebindConn {
	t.Helper()
	r, err := ListenRebindable(netip.MustParseAddrPort(addr), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// sockMark reads SO_MARK of the socket c uses.
func sockMark(t *testing.T, c UDPConn) int {
	t.Helper()
	if r, ok := c.(*RebindConn); ok {
		c = r.cur.Load().conn
	}
	var mark int
	var serr error
	if err := c.(*udpConn).raw.Control(func(fd uintptr) {
		mark, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
	}); err != nil || serr != nil {
		t.Fatalf("getsockopt SO_MARK: %v %v", err, serr)
	}
	return mark
}

// readOne waits for one datagram on c and returns its payload.
func readOne(t *testing.T, c UDPConn) string {
	t.Helper()
	msgs := makeMsgs(1, 64)
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(msgs)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no datagram within 2 s")
	}
	return string(msgs[0].Buf[:msgs[0].N])
}

func sendTo(t *testing.T, from UDPConn, to netip.AddrPort, payload string) {
	t.Helper()
	if err := from.WriteBatch([]Datagram{{Buf: []byte(payload), N: len(payload), Addr: to}}); err != nil {
		t.Fatalf("send to %v: %v", to, err)
	}
}

// TestRebindUDPSocket: over kernel sockets on loopback. A reader blocked
// on the old socket moves to the new one, which serves both families; the
// old port is free again; a port that another socket holds (in either
// family) is EADDRINUSE and the old socket keeps working.
func TestRebindUDPSocket(t *testing.T) {
	r := rebindableT(t, "[::]:0", UDPOptions{})
	v4 := listenT(t, "127.0.0.1:0", UDPOptions{})
	v6 := listenT(t, "[::1]:0", UDPOptions{})
	oldPort := r.LocalAddr().Port()

	got := make(chan string, 1)
	go func() {
		msgs := makeMsgs(1, 64)
		if _, err := r.ReadBatch(msgs); err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(msgs[0].Buf[:msgs[0].N])
	}()
	time.Sleep(20 * time.Millisecond) // let it block in recvmmsg
	if err := r.Rebind(0, 0); err != nil {
		t.Fatal(err)
	}
	newPort := r.LocalAddr().Port()
	if newPort == oldPort || newPort == 0 {
		t.Fatalf("rebound from %d to %d", oldPort, newPort)
	}
	sendTo(t, v4, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), newPort), "v4")
	select {
	case s := <-got:
		if s != "v4" {
			t.Fatalf("blocked reader got %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the blocked reader did not move to the new socket")
	}
	sendTo(t, v6, netip.AddrPortFrom(netip.MustParseAddr("::1"), newPort), "v6")
	if s := readOne(t, r); s != "v6" {
		t.Fatalf("got %q over IPv6", s)
	}
	// The old port is free in both families.
	listenT(t, netip.AddrPortFrom(netip.IPv6Unspecified(), oldPort).String(), UDPOptions{}).Close()

	// A port held by an IPv4-only socket is taken for the dual-stack one.
	taken := v4.LocalAddr().Port()
	err := r.Rebind(taken, 0)
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("Rebind to a taken port: %v, want EADDRINUSE", err)
	}
	if r.LocalAddr().Port() != newPort {
		t.Fatalf("a failed rebind moved the socket to %v", r.LocalAddr())
	}
	sendTo(t, v4, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), newPort), "still")
	if s := readOne(t, r); s != "still" {
		t.Fatalf("old socket after a failed rebind got %q", s)
	}
	// A chosen free port.
	free := listenT(t, "[::]:0", UDPOptions{})
	port := free.LocalAddr().Port()
	free.Close()
	if err := r.Rebind(port, 0); err != nil || r.LocalAddr().Port() != port {
		t.Fatalf("Rebind(%d): %v, at %v", port, err, r.LocalAddr())
	}
}

// TestUDPMark: SO_MARK from the options, changed in place, removed with
// 0, and kept by a RebindConn across a rebind. Needs CAP_NET_ADMIN.
func TestUDPMark(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: needs root (CAP_NET_ADMIN) for SO_MARK")
		}
		t.Skip("needs root (CAP_NET_ADMIN) for SO_MARK")
	}
	c := listenT(t, "[::]:0", UDPOptions{Mark: 0x51820})
	if m := sockMark(t, c); m != 0x51820 || c.(Marker).Mark() != 0x51820 {
		t.Fatalf("SO_MARK %#x, Mark %#x; want 0x51820", m, c.(Marker).Mark())
	}
	if err := c.(Marker).SetMark(0); err != nil || sockMark(t, c) != 0 {
		t.Fatalf("SetMark(0): %v, SO_MARK %#x", err, sockMark(t, c))
	}

	r := rebindableT(t, "[::]:0", UDPOptions{})
	if sockMark(t, r) != 0 || r.Mark() != 0 {
		t.Fatal("a mark without asking")
	}
	if err := r.SetMark(7); err != nil || sockMark(t, r) != 7 {
		t.Fatalf("SetMark(7): %v, SO_MARK %d", err, sockMark(t, r))
	}
	if err := r.Rebind(0, r.Mark()); err != nil {
		t.Fatal(err)
	}
	if sockMark(t, r) != 7 || r.Mark() != 7 {
		t.Fatalf("after a rebind: SO_MARK %d, Mark %d; want 7", sockMark(t, r), r.Mark())
	}
	if err := r.Rebind(0, 8); err != nil || sockMark(t, r) != 8 {
		t.Fatalf("rebind with a new mark: %v, SO_MARK %d", err, sockMark(t, r))
	}
}

// TestRebindConnZeroAlloc: the RebindConn adds no allocation to a read
// or a write.
func TestRebindConnZeroAlloc(t *testing.T) {
	recv := rebindableT(t, "[::]:0", UDPOptions{})
	send := rebindableT(t, "[::]:0", UDPOptions{})
	to := netip.AddrPortFrom(netip.MustParseAddr("::1"), recv.LocalAddr().Port())
	assertBatchZeroAlloc(t, send, recv, to)
}
