package e2e

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// serveDNS answers A queries for every name with addr, and AAAA queries
// with no answer, on UDP at listen in ns, until the test ends: enough of
// DNS for Go's resolver to find an endpoint's name.
func serveDNS(t *testing.T, ns interface{ Do(func() error) error }, listen netip.AddrPort, addr netip.Addr) {
	t.Helper()
	var conn *net.UDPConn
	if err := ns.Do(func() (err error) { conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen)); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], addr); resp != nil {
				conn.WriteToUDPAddrPort(resp, from)
			}
		}
	}()
}

// dnsAnswer is the response to the query q: addr for A, nothing for the
// rest; nil for what is not a one-question query.
func dnsAnswer(q []byte, addr netip.Addr) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5 // the root label, type, class
	if end > len(q) {
		return nil
	}
	resp := append([]byte(nil), q[:end]...)
	resp[2], resp[3] = 0x81, 0x80 // a response, recursion available, no error
	binary.BigEndian.PutUint16(resp[8:10], 0)
	binary.BigEndian.PutUint16(resp[10:12], 0)
	if binary.BigEndian.Uint16(q[end-4:end-2]) != 1 { // not A
		binary.BigEndian.PutUint16(resp[6:8], 0)
		return resp
	}
	binary.BigEndian.PutUint16(resp[6:8], 1)
	a := addr.As4()
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
	return append(resp, a[:]...)
}

// TestRestartResolvesEndpointName: a full tunnel whose peer is named,
// not numbered, is killed; the restart must look the name up while the
// crashed run's unreachable routes still drop every unmarked packet to
// the name server (it is not on the local network). Its lookups carry
// the crashed run's mark, so they get past them, and it comes up.
func TestRestartResolvesEndpointName(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	l := newLeakLab(t, b, allV4, allV6)
	serveDNS(t, l.z.ns, netip.AddrPortFrom(farV4, 53), l.z.outer)
	l.a.ns.WriteEtc(t, "resolv.conf", "nameserver "+farV4.String()+"\n")
	p := fullTunnelPeer(l.z)
	p.Endpoint = "peer.pipeguard.test:51820"
	l.a.writeConfig(t, p)

	first := l.startClient(t, b)
	if out, ok := pingOut(l.a.ns, farV4); !ok {
		t.Fatalf("ping %s through the tunnel:\n%s", farV4, out)
	}
	l.kill(t, first)
	// The name server is out of reach now, for all but the tunnel's mark.
	if out, ok := pingOut(l.a.ns, farV4, "-c", "1", "-w", "1"); ok {
		t.Fatalf("the name server answers pings after the crash; the test would show nothing:\n%s", out)
	}
	second := l.startClient(t, b)
	if out, ok := pingOut(l.a.ns, farV4); !ok {
		t.Errorf("ping %s after the restart:\n%s", farV4, out)
	}
	stopAndCheck(t, second, l.a)
}
