package tunio

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestUDPECN sends datagrams with every ECN codepoint, in runs that GSO
// would otherwise glue together, over every socket family and offload
// mode, and checks that each arrives with the ECN it was sent with.
func TestUDPECN(t *testing.T) {
	nets := []struct{ name, recvAddr, sendAddr, dst string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:%d"},
		{"ipv6", "[::1]:0", "[::1]:0", "[::1]:%d"},
		{"dual-stack receives ipv4", "[::]:0", "127.0.0.1:0", "127.0.0.1:%d"},
		{"dual-stack sends ipv4", "127.0.0.1:0", "[::]:0", "127.0.0.1:%d"},
		{"dual-stack sends ipv6", "[::1]:0", "[::]:0", "[::1]:%d"},
	}
	for _, nt := range nets {
		for _, mode := range offloadModes {
			t.Run(nt.name+"/"+mode.name, func(t *testing.T) {
				recv := listenT(t, nt.recvAddr, mode.recv)
				send := listenT(t, nt.sendAddr, mode.send)
				dst := netip.MustParseAddrPort(fmt.Sprintf(nt.dst, recv.LocalAddr().Port()))
				out := makeMsgs(64, 1312)
				for i := range out {
					out[i].N, out[i].Addr = 1312, dst
					out[i].ECN = uint8(i/5) % 4 // runs of 5 of each codepoint
					out[i].Buf[0] = byte(i)
				}
				if err := send.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
				got := readECN(t, recv, len(out))
				for i, e := range got {
					if e != out[i].ECN {
						t.Fatalf("datagram %d: ECN %d, sent %d", i, e, out[i].ECN)
					}
				}
				if !send.(*udpConn).sendECN.Load() {
					t.Fatal("the kernel refused the TOS cmsg")
				}
			})
		}
	}
}

// readECN reads want datagrams from c, numbered by their first byte, and
// returns the ECN of each by number.
func readECN(t *testing.T, c UDPConn, want int) []uint8 {
	t.Helper()
	got := make([]uint8, want)
	msgs := makeMsgs(16, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < want; {
		k, err := c.(TryReader).TryReadBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("got %d of %d datagrams", n, want)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		for _, m := range msgs[:k] {
			got[m.Buf[0]] = m.ECN
		}
		n += k
	}
	return got
}

func TestUDPTryReadBatch(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			recv := listenT(t, "127.0.0.1:0", mode.recv)
			send := listenT(t, "127.0.0.1:0", mode.send)
			msgs := makeMsgs(8, 2048)
			tr := recv.(TryReader)
			if n, err := tr.TryReadBatch(msgs); n != 0 || err != nil {
				t.Fatalf("empty socket: %d, %v", n, err)
			}
			out := makeMsgs(3, 100)
			for i := range out {
				out[i].N, out[i].Addr = 100, recv.LocalAddr()
			}
			if err := send.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			n := 0
			for deadline := time.Now().Add(5 * time.Second); n < 3 && time.Now().Before(deadline); {
				k, err := tr.TryReadBatch(msgs)
				if err != nil {
					t.Fatal(err)
				}
				n += k
			}
			if n != 3 {
				t.Fatalf("read %d of 3", n)
			}
			if allocs := testing.AllocsPerRun(100, func() { tr.TryReadBatch(msgs) }); allocs != 0 {
				t.Fatalf("%v allocations per TryReadBatch", allocs)
			}
			recv.Close()
			if _, err := tr.TryReadBatch(msgs); !IsClosed(err) {
				t.Fatalf("after Close: %v", err)
			}
		})
	}
}

// TestUDPStamp: every datagram read carries the kernel's receive stamp,
// taken between the send and the read.
func TestUDPStamp(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			recv := listenT(t, "127.0.0.1:0", mode.recv)
			send := listenT(t, "127.0.0.1:0", mode.send)
			out := makeMsgs(20, 1000)
			for i := range out {
				out[i].N, out[i].Addr, out[i].Buf[0] = 1000, recv.LocalAddr(), byte(i)
			}
			before := time.Now().UnixNano()
			if err := send.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			msgs := makeMsgs(8, 2048)
			for n := 0; n < len(out); {
				k, err := recv.ReadBatch(msgs)
				if err != nil {
					t.Fatal(err)
				}
				after := time.Now().UnixNano()
				for _, m := range msgs[:k] {
					if m.Stamp < before || m.Stamp > after {
						t.Fatalf("datagram %d stamped %d, not within [%d, %d]", m.Buf[0], m.Stamp, before, after)
					}
				}
				n += k
			}
		})
	}
}
