package netns

import (
	"net"
	"testing"
	"time"
)

// TestSendStamps: on loopback, every datagram a probe socket sends gets
// the kernel's stamp of its send, in order, between the clock reads
// before and after the send.
func TestSendStamps(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := stampArrivals(conn); err != nil {
		t.Fatal(err)
	}
	stamps, err := stampSends(conn)
	if err != nil {
		t.Fatal(err)
	}
	req := make([]byte, probePayload)
	for i := range 5 {
		before := time.Now().UnixNano()
		if _, err := conn.Write(req); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UnixNano()
		left, ok := stamps.sent()
		if !ok {
			t.Fatalf("send %d: no stamp", i)
		}
		if left < before || left > after {
			t.Fatalf("send %d: stamped %d, outside the send's %d to %d", i, left, before, after)
		}
	}
	// A send whose stamp was never read does not stand in for the next.
	stamps.next++
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := stamps.sent(); ok {
		t.Fatal("a send's stamp was taken for another's")
	}
	// The socket still reads its answers, with their arrival stamps.
	if _, err := srv.WriteToUDP(req, conn.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 2048), make([]byte, stampSpace)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := conn.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := arrivalStamp(oob[:oobn]); !ok {
		t.Fatal("an answer to a socket that stamps its sends came without its arrival stamp")
	}
}
