package leakcap

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/cmd/internal/netnstest"
)

// TestCaptureCountsWhatLeaves: on a veth pair in namespaces, the capture
// on one end counts cleartext UDP and pings it sends as leaks, and lets a
// WireGuard message to the peer pass; what the other end sends is not
// counted. Close stops the reader goroutine.
func TestCaptureCountsWhatLeaves(t *testing.T) {
	netnstest.RequireRoot(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := netnstest.New(t), netnstest.New(t)
	pa, pb := netip.MustParsePrefix("10.98.0.1/24"), netip.MustParsePrefix("10.98.0.2/24")
	ifA, _ := netnstest.Link(t, a, b, pa, pb)
	peer := netip.AddrPortFrom(pb.Addr(), 51820)
	// Neighbours resolved first: on a busy machine a slow resolution can
	// drop the packets queued behind it, and the count would be short.
	a.MustRun(t, "ping", "-c", "1", pb.Addr().String())
	b.MustRun(t, "ping", "-c", "1", pa.Addr().String())

	var c *Capture
	if err := a.Do(func() (err error) { c, err = Open(ifA, Filter{Peer: peer}); return err }); err != nil {
		t.Fatal(err)
	}
	send := func(ns *netnstest.NS, to netip.AddrPort, payload []byte) {
		t.Helper()
		err := ns.Do(func() error {
			conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.IPv4Unspecified(), 51820)))
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.WriteToUDPAddrPort(payload, to)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	initiation := make([]byte, 148)
	initiation[0] = 1
	send(a, peer, initiation)                                      // the tunnel's own: not a leak (and ARP first)
	send(a, netip.AddrPortFrom(pb.Addr(), 53), []byte("example"))  // cleartext: a leak
	send(b, netip.AddrPortFrom(pa.Addr(), 53), []byte("incoming")) // received: not counted, but a's ICMP error in answer is
	a.MustRun(t, "ping", "-c", "2", "-i", "0.2", pb.Addr().String())

	// The frames reach the socket asynchronously: wait for the count.
	deadline := time.Now().Add(10 * time.Second)
	for c.Count().Leaked < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res, err := c.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d, leaked %d: %v", res.Sent, res.Leaked, res.Examples)
	// The UDP to port 53, the port unreachable a answers b's UDP with,
	// and the two pings; not the ARP, the WireGuard message, or what a
	// receives (b's UDP, the ping replies).
	if res.Leaked != 4 {
		t.Errorf("leaked %d, want 4 (udp, icmp port unreachable, 2 pings): %v", res.Leaked, res.Examples)
	}
	if res.Sent < 5 {
		t.Errorf("sent %d, want at least 5 (with the WireGuard message)", res.Sent)
	}
}
