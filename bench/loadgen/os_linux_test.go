package loadgen

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"pipeguard/bench/loadgen/rawudp"
	"pipeguard/tunio"
)

// TestProcFile: a procFile read again (at offset 0 of the fd it keeps)
// shows the kernel's counters as they are now, not as they were at the
// first read; close closes its fd.
func TestProcFile(t *testing.T) {
	f := newProcFile("/proc/self/net/dev")
	defer f.close()
	b, err := f.read()
	if err != nil {
		t.Fatal(err)
	}
	c0, err := parseNetDev(b, "lo")
	if err != nil {
		t.Fatal(err)
	}
	a, err := rawudp.New(netip.MustParseAddrPort("127.0.0.1:0"), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	msgs := make([]tunio.Datagram, 10)
	for i := range msgs {
		msgs[i] = tunio.Datagram{Buf: make([]byte, 100), N: 100, Addr: a.LocalAddr()}
	}
	if err := a.WriteBatch(msgs); err != nil {
		t.Fatal(err)
	}
	if b, err = f.read(); err != nil {
		t.Fatal(err)
	}
	c1, err := parseNetDev(b, "lo")
	if err != nil {
		t.Fatal(err)
	}
	if c1.rxPackets <= c0.rxPackets { // one GSO packet on lo, or ten
		t.Errorf("lo received %d then %d packets: the second read is stale", c0.rxPackets, c1.rxPackets)
	}
	fd := f.fd
	f.close()
	if f.fd != -1 || unix.Close(fd) == nil {
		t.Errorf("fd %d still open after close", fd)
	}
}
