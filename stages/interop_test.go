package stages

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// wgEnd is a wireguard-go device on an in-memory network, with PipeGuard's
// flow helpers attached to its channel TUN.
type wgEnd struct {
	dev  *device.Device
	tun  *tuntest.ChannelTUN
	stop chan struct{} // closed to stop the test's goroutines on the TUN
}

// startWG starts a wireguard-go device listening at udp on net, with one
// peer (pipeguard's public key and endpoint) allowed peerHost's addresses.
// It is closed in t.Cleanup.
func startWG(t *testing.T, net *memudp.Network, udp netip.AddrPort, pg *end, peerHost host) *wgEnd {
	t.Helper()
	key := mustKey(t)
	w := &wgEnd{tun: tuntest.NewChannelTUN(), stop: make(chan struct{})}
	w.dev = device.NewDevice(w.tun.TUN(), memudp.NewBind(net, udp.Addr()), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(func() {
		close(w.stop)
		w.dev.Close()
	})
	pub := pg.key.Public()
	cfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=%s\nallowed_ip=%s/32\nallowed_ip=%s/128\n",
		hex.EncodeToString(key[:]), udp.Port(), hex.EncodeToString(pub[:]), pg.udp, peerHost.v4, peerHost.v6)
	if err := w.dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := w.dev.Up(); err != nil {
		t.Fatal(err)
	}
	// PipeGuard learns the device's key only now.
	if err := pg.tun.AddPeer(PeerConfig{PublicKey: key.Public(), Endpoint: udp,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(hostB.v4, 32), netip.PrefixFrom(hostB.v6, 128)}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// checkFlows checks what the device writes to its TUN, like checkFlows
// for a PipeGuard end, with no gaps allowed.
func (w *wgEnd) checkFlows(to host, senders []host) *flowChecker {
	return w.checkFlowsGaps(to, senders, false)
}

// checkFlowsGaps is checkFlows, with gaps allowed if gaps is true.
func (w *wgEnd) checkFlowsGaps(to host, senders []host, gaps bool) *flowChecker {
	c := newFlowChecker(to, senders, gaps)
	go func() {
		defer close(c.done)
		var want [wire.MaxInnerSize]byte
		for {
			select {
			case p := <-w.tun.Inbound:
				c.check(p, want[:])
			case <-w.stop:
				return
			}
		}
	}()
	return c
}

// sendFlow hands the device packets first..first+n-1 of the flow
// from → to, one by one, as its TUN would.
func (w *wgEnd) sendFlow(from, to host, first, n uint32) error {
	for seq := first; seq < first+n; seq++ {
		p := flowPacket(make([]byte, wire.MaxInnerSize), from, to, seq)
		select {
		case w.tun.Outbound <- p:
		case <-w.stop:
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("wireguard-go did not read packet %d from its TUN", seq)
		}
	}
	return nil
}

// TestInteropWireGuardGo runs PipeGuard against wireguard-go's device, an
// independent implementation, over the in-memory network: both engines,
// PipeGuard as initiator (it sends first) and as responder (the device
// sends first). Mixed IPv4/IPv6 packets of 20..1280 bytes then stream
// both ways at once; every one arrives intact and in order.
func TestInteropWireGuardGo(t *testing.T) {
	const n = 1000
	for _, engine := range engines {
		for _, initiator := range []bool{true, false} {
			role := map[bool]string{true: "initiator", false: "responder"}[initiator]
			t.Run(fmt.Sprintf("%s/pipeguard-%s", engine, role), func(t *testing.T) {
				leakCheck(t)
				net := memudp.NewNetworkConfig(blocking)
				pg := startTunnel(t, net, tunnelSpec{udp: netip.MustParseAddrPort("192.0.2.1:51820"), inner: hostA.v4, engine: engine, workers: 4})
				wg := startWG(t, net, netip.MustParseAddrPort("192.0.2.2:51821"), pg, hostA)
				atPG := checkFlows(pg, hostA, []host{hostB}, false)
				atWG := wg.checkFlows(hostB, []host{hostA})
				st := stats(pg)

				pgFirst := func() {
					if err := sendFlows(pg, hostA, []host{hostB}, 0, 1); err != nil {
						t.Fatal(err)
					}
					atWG.wait(t, 0, 1, 5*time.Second, st)
				}
				wgFirst := func() {
					if err := wg.sendFlow(hostB, hostA, 0, 1); err != nil {
						t.Fatal(err)
					}
					atPG.wait(t, 0, 1, 5*time.Second, st)
				}
				if initiator {
					pgFirst()
					wgFirst()
				} else {
					wgFirst()
					pgFirst()
				}
				// One handshake message each way (the counter is updated
				// after the message took effect: wait for it).
				hsMessages := func() uint64 { return stageStats(t, pg.tun.Stats(), "handshake").Packets }
				waitFor(t, 5*time.Second, func() bool { return hsMessages() == 1 },
					func() string { return "PipeGuard's handshake workers did not count one message\n" + st() })

				errc := make(chan error, 2)
				go func() { errc <- sendFlows(pg, hostA, []host{hostB}, 1, n-1) }()
				go func() { errc <- wg.sendFlow(hostB, hostA, 1, n-1) }()
				atWG.wait(t, 0, n, 5*time.Second, st)
				atPG.wait(t, 0, n, 5*time.Second, st)
				for range 2 {
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
				}
				if d := totalDrops(pg.tun.Stats()); d != 0 {
					t.Errorf("PipeGuard dropped %d packets\nstats:\n%s", d, st())
				}
				if n := hsMessages(); n != 1 {
					t.Errorf("PipeGuard's handshake workers took %d messages, want 1: no retry, no second handshake\nstats:\n%s", n, st())
				}
			})
		}
	}
}
