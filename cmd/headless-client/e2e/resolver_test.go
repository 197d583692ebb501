package e2e

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// heldResolver makes the test n's name server (127.0.0.1:53 in its
// namespace, through /etc/netns): every A query is answered with addr,
// and every other with no records, but only once release is closed
// (never, if the test does not). queried closes at the first query.
func heldResolver(t *testing.T, n *node, addr netip.Addr) (queried <-chan struct{}, release chan struct{}) {
	t.Helper()
	etc := filepath.Join("/etc/netns", n.ns.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:10 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var conn net.PacketConn
	if err := n.ns.Do(func() (err error) { conn, err = net.ListenPacket("udp", "127.0.0.1:53"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	q, release, stop := make(chan struct{}), make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		first := true
		buf := make([]byte, 512)
		for {
			nr, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if first {
				close(q)
				first = false
			}
			select {
			case <-release:
			case <-stop:
				return
			}
			if reply := dnsReply(buf[:nr], addr); reply != nil {
				conn.WriteTo(reply, from)
			}
		}
	}()
	return q, release
}

// dnsReply answers a DNS query (RFC 1035 4.1) for one name: an A query
// with addr, any other with no records; nil for what is no query.
func dnsReply(query []byte, addr netip.Addr) []byte {
	if len(query) < 12 {
		return nil
	}
	i := 12
	for i < len(query) && query[i] != 0 { // QNAME's labels
		i += 1 + int(query[i])
	}
	if i+5 > len(query) {
		return nil
	}
	question := query[12 : i+5] // QNAME, its 0, QTYPE, QCLASS
	isA := query[i+1] == 0 && query[i+2] == 1
	reply := append([]byte{query[0], query[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, question...)
	if isA {
		reply[7] = 1 // ANCOUNT
		a := addr.As4()
		reply = append(reply, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, a[0], a[1], a[2], a[3])
	}
	return reply
}
