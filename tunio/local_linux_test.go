package tunio

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// localCase is one conversation in the local-address tests: a peer sends
// to one of the host's addresses, and the host answers from the Local the
// datagram arrived with.
type localCase struct {
	name     string
	host     string // the host's socket address (port 0)
	peer     string // the peer's socket address (port 0)
	to       string // the host address the peer writes to
	wantFrom string // the source the peer sees in the answer
}

// converse runs lc: a batch of n datagrams to lc.to, then an answer to each
// from its Local, in one batch (so that GSO may join them). It returns what
// the host read and what the peer read back.
func converse(t *testing.T, host, peer UDPConn, to netip.AddrPort, n int) (in, back []Datagram) {
	t.Helper()
	out := makeMsgs(n, 1312)
	for i := range out {
		out[i].N, out[i].Addr = 1312, to
	}
	if err := peer.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	in = readAll(t, host, n, 16)
	ans := makeMsgs(n, 1312)
	for i, d := range in {
		ans[i].N, ans[i].Addr, ans[i].Local = 1312, d.Addr, d.Local
	}
	if err := host.WriteBatch(ans); err != nil {
		t.Fatal(err)
	}
	for i := range ans {
		if ans[i].LocalGone {
			t.Fatalf("answer %d: source %v refused", i, ans[i].Local)
		}
	}
	return in, readAll(t, peer, n, 16)
}

// TestUDPAnswersFromLocal: the host learns the address each datagram was
// sent to, and answers from it, on every kind of socket and offload mode.
// 127.0.0.2 is the host's as much as 127.0.0.1 (all of 127/8 is local),
// so this needs no namespace and no root.
func TestUDPAnswersFromLocal(t *testing.T) {
	cases := []localCase{
		{"ipv4 socket", "0.0.0.0:0", "127.0.0.1:0", "127.0.0.2", "127.0.0.2"},
		{"ipv4 socket, first address", "0.0.0.0:0", "127.0.0.1:0", "127.0.0.1", "127.0.0.1"},
		{"dual-stack socket, ipv4", "[::]:0", "127.0.0.1:0", "127.0.0.2", "127.0.0.2"},
		{"dual-stack socket, v4-mapped", "[::]:0", "[::]:0", "::ffff:127.0.0.2", "127.0.0.2"},
		{"dual-stack socket, ipv6", "[::]:0", "[::1]:0", "::1", "::1"},
	}
	for _, lc := range cases {
		for _, mode := range offloadModes {
			t.Run(lc.name+"/"+mode.name, func(t *testing.T) {
				host := listenT(t, lc.host, mode.recv)
				peer := listenT(t, lc.peer, mode.send)
				to := netip.AddrPortFrom(netip.MustParseAddr(lc.to), host.LocalAddr().Port())
				in, back := converse(t, host, peer, to, 20)
				want := netip.MustParseAddr(lc.wantFrom)
				for i, d := range in {
					if d.Local.Addr() != want || d.Local.IfIndex() != 1 { // lo is 1
						t.Fatalf("datagram %d: local %v, want %v on lo", i, d.Local, want)
					}
				}
				for i, d := range back {
					if d.Addr.Addr() != want {
						t.Fatalf("answer %d from %v, want %v", i, d.Addr, want)
					}
				}
			})
		}
	}
}

// TestUDPBatchSplitsBySource: one batch to one destination from two
// sources in turn leaves from both, in order: a GSO run never joins
// datagrams of different sources.
func TestUDPBatchSplitsBySource(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			host := listenT(t, "0.0.0.0:0", mode.send)
			peer := listenT(t, "127.0.0.1:0", mode.recv)
			sources := []Local{
				LocalFrom(netip.MustParseAddr("127.0.0.2"), 1),
				LocalFrom(netip.MustParseAddr("127.0.0.3"), 1),
			}
			out := makeMsgs(60, 1312)
			for i := range out {
				out[i].N, out[i].Addr = 1312, peer.LocalAddr()
				out[i].Local = sources[i/7%2] // runs of 7
				out[i].Buf[0] = byte(i)
			}
			if err := host.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, peer, len(out), 16)
			for i, d := range got {
				if d.Buf[0] != byte(i) || d.Addr.Addr() != out[i].Local.Addr() {
					t.Fatalf("datagram %d: #%d from %v, want #%d from %v", i, d.Buf[0], d.Addr, i, out[i].Local)
				}
			}
		})
	}
}

// TestUDPLocalGone: a source address the host no longer has is refused by
// the kernel; WriteBatch sends the datagram again from the address routing
// picks and marks it LocalGone, for both families, alone and in GSO runs.
func TestUDPLocalGone(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	ipIn(t, ns, "link", "set", "lo", "up")
	ipIn(t, ns, "addr", "add", "10.9.0.1/32", "dev", "lo")
	ipIn(t, ns, "addr", "add", "fd09::1/128", "dev", "lo", "nodad")
	cases := []struct {
		name, host, peer, gone string
	}{
		{"ipv4 socket", "0.0.0.0:0", "10.9.0.1:0", "10.9.0.%d"},
		{"dual-stack socket, ipv4", "[::]:0", "10.9.0.1:0", "10.9.1.%d"},
		{"dual-stack socket, ipv6", "[::]:0", "[fd09::1]:0", "fd09::1:%d"},
	}
	for _, tc := range cases {
		for k, mode := range offloadModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				var host, peer UDPConn
				var herr, perr error
				ns.do(func() {
					host, herr = ListenUDPOptions(netip.MustParseAddrPort(tc.host), mode.send)
					peer, perr = ListenUDPOptions(netip.MustParseAddrPort(tc.peer), mode.recv)
				})
				if herr != nil || perr != nil {
					t.Fatal(herr, perr)
				}
				t.Cleanup(func() { host.Close(); peer.Close() })
				// An address of its own, which goes away.
				gone := netip.MustParseAddr(fmt.Sprintf(tc.gone, 10+k))
				pfx := netip.PrefixFrom(gone, gone.BitLen()).String()
				if gone.Is6() {
					ipIn(t, ns, "addr", "add", pfx, "dev", "lo", "nodad")
				} else {
					ipIn(t, ns, "addr", "add", pfx, "dev", "lo")
				}
				// Learn it the way the tunnel does: from a datagram the
				// peer sent to it.
				local := probeLocal(t, host, peer, netip.AddrPortFrom(gone, host.LocalAddr().Port()))
				if local.Addr() != gone {
					t.Fatalf("learnt %v, want %v", local, gone)
				}
				ipIn(t, ns, "addr", "del", pfx, "dev", "lo")
				out := makeMsgs(10, 1312)
				for i := range out {
					out[i].N, out[i].Addr, out[i].Local = 1312, peer.LocalAddr(), local
				}
				out[9].N = 100 // a run and a single one, with GSO
				if err := host.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
				for i := range out {
					if !out[i].LocalGone {
						t.Fatalf("datagram %d not marked LocalGone", i)
					}
				}
				got := readAll(t, peer, len(out), 16)
				for i, d := range got {
					if d.Addr.Addr() == gone {
						t.Fatalf("datagram %d from the removed address %v", i, d.Addr)
					}
				}
				t.Logf("sent again from %v", got[0].Addr.Addr())
			})
		}
	}
}

// probeLocal sends from peer to to until host reads one (a new address
// becomes usable a moment after `ip addr add` returns: the kernel installs
// its local route from a work queue), and returns the Local it arrived
// with.
func probeLocal(t *testing.T, host, peer UDPConn, to netip.AddrPort) Local {
	t.Helper()
	got := make(chan Local, 1)
	go func() {
		in := makeMsgs(1, 2048)
		if n, err := host.ReadBatch(in); err == nil && n > 0 {
			got <- in[0].Local
		}
		close(got)
	}()
	probe := makeMsgs(1, 10)
	probe[0].N, probe[0].Addr = 10, to
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := peer.WriteBatch(probe); err != nil {
			t.Logf("probe: %v", err)
		}
		select {
		case l := <-got:
			return l
		case <-tick.C:
		case <-deadline:
			host.Close()
			<-got
			t.Fatalf("nothing reached %v", to)
		}
	}
}

// TestUDPLocalZeroAlloc: learning the local address on receive and
// sending from it on send allocate nothing.
func TestUDPLocalZeroAlloc(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			recv := listenT(t, "[::]:0", mode.recv)
			send := listenT(t, "[::]:0", mode.send)
			to := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.2:%d", recv.LocalAddr().Port()))
			out := makeMsgs(32, 1312)
			for i := range out {
				out[i].N, out[i].Addr, out[i].Local = 1312, to, LocalFrom(netip.MustParseAddr("127.0.0.3"), 1)
			}
			in := makeMsgs(32, 1312)
			allocs := testing.AllocsPerRun(200, func() {
				if err := send.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < len(out); {
					n, err := recv.ReadBatch(in[got:])
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per run", allocs)
			}
			if in[0].Local.Addr() != to.Addr() || in[0].Addr.Addr() != netip.MustParseAddr("127.0.0.3") {
				t.Fatalf("read %v from %v, want local %v from 127.0.0.3", in[0].Local, in[0].Addr, to.Addr())
			}
		})
	}
}
