package stages

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// TestRebindInterop: with wireguard-go as the peer, traffic keeps flowing
// across listen port changes: PipeGuard streams packets while its socket
// moves five times (the packets that arrive do so in order; the peer
// roams to the new port on its own), both directions work after, and
// after a move to a random port that the peer is told of, the peer can
// send first.
func TestRebindInterop(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			leakCheck(t)
			net := memudp.NewNetworkConfig(blocking)
			pg := startTunnel(t, net, tunnelSpec{udp: netip.MustParseAddrPort("192.0.2.1:51820"), inner: hostA.v4,
				engine: engine, workers: 2, rebindable: true})
			wg := startWG(t, net, netip.MustParseAddrPort("192.0.2.2:51821"), pg, hostA)
			atPG := checkFlows(pg, hostA, []host{hostB}, true)
			atWG := wg.checkFlowsGaps(hostB, []host{hostA}, true)
			st := stats(pg)
			if err := sendFlows(pg, hostA, []host{hostB}, 0, 10); err != nil {
				t.Fatal(err)
			}
			atWG.wait(t, 0, 10, 5*time.Second, st)
			if err := wg.sendFlow(hostB, hostA, 0, 10); err != nil {
				t.Fatal(err)
			}
			atPG.wait(t, 0, 10, 5*time.Second, st)

			// Stream while the port moves, until it moved five times.
			stop := make(chan struct{})
			sent := make(chan uint32, 1)
			go func() {
				seq := uint32(10)
				for {
					select {
					case <-stop:
						sent <- seq
						return
					default:
					}
					if err := sendFlows(pg, hostA, []host{hostB}, seq, 32); err != nil {
						t.Error(err)
					}
					seq += 32
				}
			}()
			for port := uint16(51830); port < 51835; port++ {
				time.Sleep(2 * time.Millisecond)
				if err := pg.tun.SetListenPort(port); err != nil {
					t.Fatal(err)
				}
			}
			close(stop)
			streamed := <-sent - 10
			if got := pg.tun.LocalAddr().Port(); got != 51834 {
				t.Fatalf("listening on %d, want 51834", got)
			}
			if err := sendFlows(pg, hostA, []host{hostB}, 10+streamed, 10); err != nil {
				t.Fatal(err)
			}
			atWG.wait(t, 0, 20+streamed, 5*time.Second, st)
			got, missing, err := atWG.result(0)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("across five rebinds: %d packets arrived in order, %d lost", got, len(missing))
			for _, seq := range missing {
				if seq >= 10+streamed {
					t.Fatalf("packet %d, sent after the last rebind, was lost", seq)
				}
			}
			if c, err := net.Listen(netip.MustParseAddrPort("192.0.2.1:51820")); err != nil {
				t.Errorf("the first port is still taken: %v", err)
			} else {
				c.Close()
			}
			// The peer roamed to the new port with the packets it received.
			if err := wg.sendFlow(hostB, hostA, 10, 10); err != nil {
				t.Fatal(err)
			}
			atPG.wait(t, 0, 20, 5*time.Second, st)

			// A random port; the peer is told, and sends first.
			if err := pg.tun.SetListenPort(0); err != nil {
				t.Fatal(err)
			}
			pub := pg.key.Public()
			if err := wg.dev.IpcSet(fmt.Sprintf("public_key=%s\nupdate_only=true\nendpoint=%s\n",
				hex.EncodeToString(pub[:]), pg.tun.LocalAddr())); err != nil {
				t.Fatal(err)
			}
			if err := wg.sendFlow(hostB, hostA, 20, 10); err != nil {
				t.Fatal(err)
			}
			atPG.wait(t, 0, 30, 5*time.Second, st)
			if _, missing, err := atPG.result(0); err != nil || len(missing) != 0 {
				t.Fatalf("at PipeGuard: %v, lost %v", err, missing)
			}
		})
	}
}

// TestRebindTakenPort: a port another socket holds is refused with the
// network's "address in use", and the tunnel stays where it was, working.
func TestRebindTakenPort(t *testing.T) {
	net := memudp.NewNetworkConfig(blocking)
	leakCheck(t)
	e, p := withRawPeerOn(t, net, tunnelSpec{engine: EnginePipeline, workers: 2, rebindable: true})
	p.initiate()
	other, err := net.Listen(netip.MustParseAddrPort("192.0.2.1:51830"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := e.tun.SetListenPort(51830); !errors.Is(err, memudp.ErrAddrInUse) {
		t.Fatalf("SetListenPort to a taken port: %v", err)
	}
	if e.tun.LocalAddr() != e.udp {
		t.Fatalf("moved to %v after a refused rebind", e.tun.LocalAddr())
	}
	exchangeData(t, e, p, 1)
}

// TestFwMark: the mark from Config, changed and removed, kept across a
// rebind; a socket that cannot mark refuses a mark but not its removal,
// and one that cannot rebind refuses another port.
func TestFwMark(t *testing.T) {
	net := memudp.NewNetwork()
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	r, err := tunio.NewRebindConn(net.ListenFunc(netip.MustParseAddr("192.0.2.1")), 51820, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tun, err := New(Config{FwMark: 0x51820}, dev, r, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if tun.FwMark() != 0x51820 || r.Mark() != 0x51820 {
		t.Fatalf("mark %#x, socket's %#x; want 0x51820", tun.FwMark(), r.Mark())
	}
	if err := tun.SetListenPort(51821); err != nil || tun.FwMark() != 0x51820 {
		t.Fatalf("after a rebind: %v, mark %#x", err, tun.FwMark())
	}
	if err := tun.Rebind(51822, 3); err != nil || tun.FwMark() != 3 || tun.LocalAddr().Port() != 51822 {
		t.Fatalf("Rebind(51822, 3): %v, mark %d, at %v", err, tun.FwMark(), tun.LocalAddr())
	}
	if err := tun.SetFwMark(0); err != nil || tun.FwMark() != 0 {
		t.Fatalf("SetFwMark(0): %v, mark %d", err, tun.FwMark())
	}

	// A socket that is neither Marker nor Rebinder.
	plain, err := net.Listen(netip.MustParseAddrPort("192.0.2.9:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	tun2, err := New(Config{PrivateKey: mustKey(t)}, dev, bareConn{plain}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tun2.SetFwMark(5); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SetFwMark on a socket without marks: %v", err)
	}
	if err := tun2.SetFwMark(0); err != nil {
		t.Errorf("SetFwMark(0) on a socket without marks: %v", err)
	}
	if err := tun2.SetListenPort(2); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SetListenPort on a socket that cannot rebind: %v", err)
	}
	if err := tun2.SetListenPort(1); err != nil {
		t.Errorf("SetListenPort to the port it has: %v", err)
	}
	if _, err := New(Config{FwMark: 1}, dev, bareConn{plain}, nil, testLog(t)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("New with a mark on a socket without marks: %v", err)
	}
}

// bareConn hides every optional capability of a UDPConn.
type bareConn struct{ tunio.UDPConn }

// TestNoAllocsPerPacketRebindable: a tunnel on a rebindable socket (as
// the client runs) allocates nothing per packet either.
func TestNoAllocsPerPacketRebindable(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 44,000 packets")
	}
	for _, inbound := range []bool{true, false} {
		dir := map[bool]string{true: "inbound", false: "outbound"}[inbound]
		t.Run(dir, func(t *testing.T) {
			r := newAllocRigSpec(t, tunnelSpec{engine: EnginePipeline, rebindable: true}, nil)
			if _, ok := r.e.tun.udp.(*tunio.RebindConn); !ok {
				t.Fatalf("the tunnel's socket is a %T", r.e.tun.udp)
			}
			got := measureDirection(t, r, inbound)
			t.Logf("%d allocations for %d packets", got, allocPackets)
			if got >= allocBudget {
				t.Errorf("%d heap allocations for %d packets: the %s path allocates per packet\n%s", got, allocPackets, dir, fmtStats(r.e.tun.Stats()))
			}
		})
	}
}
