package stages

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio/memudp"
)

// blocking is an in-memory network that makes a sender wait at a full
// receive queue instead of dropping: with it, no packet may be lost.
var blocking = memudp.Config{Block: true}

// firstPacketEachWay sends packet 0 of the flow from a to b and waits
// for it at b, then the same from b to a: the handshake, with nothing
// else waiting.
func firstPacketEachWay(t *testing.T, a, b *end, atA, atB *flowChecker, st func() string) {
	t.Helper()
	if err := sendFlows(a, hostA, []host{hostB}, 0, 1); err != nil {
		t.Fatal(err)
	}
	atB.wait(t, 0, 1, 5*time.Second, st)
	if err := sendFlows(b, hostB, []host{hostA}, 0, 1); err != nil {
		t.Fatal(err)
	}
	atA.wait(t, 0, 1, 5*time.Second, st)
}

// stats prints both ends' counters for a failure message.
func stats(ends ...*end) func() string {
	return func() string {
		s := ""
		for i, e := range ends {
			s += fmt.Sprintf(" tunnel %d (%s):\n%s", i, e.udp, fmtStats(e.tun.Stats()))
		}
		return s
	}
}

// TestPairBulkBothWays: two tunnels send thousands of mixed IPv4 and IPv6
// packets of 20..1280 bytes to each other at once, over a network that
// never drops; each side receives every packet, intact and in order.
// Every pairing of engines runs, so the two engines also interoperate.
func TestPairBulkBothWays(t *testing.T) {
	const n = 2000
	for _, tc := range []struct{ a, b Engine }{
		{EngineSequential, EngineSequential},
		{EnginePipeline, EnginePipeline},
		{EnginePipeline, EngineSequential},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.a, tc.b), func(t *testing.T) {
			a, b := newPair(t, pairOpts{dualStack: true, engine: tc.a, engineB: tc.b, workers: 4, queue: 256, net: blocking, clock: fakeClock()})
			atB := checkFlows(b, hostB, []host{hostA}, false)
			atA := checkFlows(a, hostA, []host{hostB}, false)
			st := stats(a, b)
			// Packet 0 each way: the handshake, with nothing else waiting.
			firstPacketEachWay(t, a, b, atA, atB, st)

			errc := make(chan error, 2)
			go func() { errc <- sendFlows(a, hostA, []host{hostB}, 1, n-1) }()
			go func() { errc <- sendFlows(b, hostB, []host{hostA}, 1, n-1) }()
			atB.wait(t, 0, n, 5*time.Second, st)
			atA.wait(t, 0, n, 5*time.Second, st)
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range []*end{a, b} {
				if d := totalDrops(e.tun.Stats()); d != 0 {
					t.Errorf("%s dropped %d packets on a lossless network\nstats:\n%s", e.udp, d, st())
				}
			}
		})
	}
}

// TestHubManyPeers: a hub tunnel with four peer tunnels, every tunnel
// with four workers per pool. Each spoke streams mixed IPv4/IPv6 packets
// of 20..1280 bytes to the hub while the hub streams to every spoke,
// interleaved, thousands in flight. Per peer flow, every packet arrives
// intact and in order, and nothing is dropped.
func TestHubManyPeers(t *testing.T) {
	const (
		spokes = 4
		n      = 1500 // packets per flow and direction
	)
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			leakCheck(t)
			net := memudp.NewNetworkConfig(blocking)
			clk := fakeClock()
			hubKey := mustKey(t)
			hubUDP := netip.MustParseAddrPort("192.0.2.1:51820")
			hosts := make([]host, spokes)
			keys := make([]noise.PrivateKey, spokes)
			var hubPeers []PeerConfig
			for i := range spokes {
				hosts[i] = host{netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), netip.AddrFrom16([16]byte{0: 0xfd, 13: 1, 15: byte(i + 1)})}
				keys[i] = mustKey(t)
				hubPeers = append(hubPeers, PeerConfig{PublicKey: keys[i].Public(), Endpoint: spokeUDP(i),
					AllowedIPs: []netip.Prefix{netip.PrefixFrom(hosts[i].v4, 32), netip.PrefixFrom(hosts[i].v6, 128)}})
			}
			hub := startTunnel(t, net, tunnelSpec{key: hubKey, udp: hubUDP, inner: hostA.v4, engine: engine, workers: 4, queue: 512, clock: clk, peers: hubPeers})
			ends := []*end{hub}
			atSpoke := make([]*flowChecker, spokes)
			for i := range spokes {
				s := startTunnel(t, net, tunnelSpec{key: keys[i], udp: spokeUDP(i), inner: hosts[i].v4, engine: engine, workers: 4, queue: 512, clock: clk,
					peers: []PeerConfig{{PublicKey: hubKey.Public(), Endpoint: hubUDP,
						AllowedIPs: []netip.Prefix{netip.PrefixFrom(hostA.v4, 32), netip.PrefixFrom(hostA.v6, 128)}}}})
				ends = append(ends, s)
				atSpoke[i] = checkFlows(s, hosts[i], []host{hostA}, false)
			}
			atHub := checkFlows(hub, hostA, hosts, false)
			st := stats(ends...)

			// Handshakes first, one packet each way, so that no packet
			// overflows a queue waiting for a session.
			for i := range spokes {
				if err := sendFlows(ends[i+1], hosts[i], []host{hostA}, 0, 1); err != nil {
					t.Fatal(err)
				}
				atHub.wait(t, i, 1, 5*time.Second, st)
			}
			if err := sendFlows(hub, hostA, hosts, 0, 1); err != nil {
				t.Fatal(err)
			}
			for i := range spokes {
				atSpoke[i].wait(t, 0, 1, 5*time.Second, st)
			}

			errc := make(chan error, spokes+1)
			go func() { errc <- sendFlows(hub, hostA, hosts, 1, n-1) }()
			for i := range spokes {
				go func() { errc <- sendFlows(ends[i+1], hosts[i], []host{hostA}, 1, n-1) }()
			}
			for i := range spokes {
				atHub.wait(t, i, n, 5*time.Second, st)
				atSpoke[i].wait(t, 0, n, 5*time.Second, st)
			}
			for range spokes + 1 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range ends {
				if d := totalDrops(e.tun.Stats()); d != 0 {
					t.Errorf("%s dropped %d packets on a lossless network\nstats:\n%s", e.udp, d, st())
				}
			}
			hs := hub.tun.Stats()
			if engine == EnginePipeline {
				// The hub's pools had four workers (round-robin, so each
				// took a quarter) and carried every packet.
				for _, name := range []string{"decrypt", "encrypt"} {
					if s := stageStats(t, hs, name); s.Instances != 4 || s.Packets < uint64(spokes*n) {
						t.Errorf("%s: %d instances moved %d packets, want 4 moving %d\nstats:\n%s", name, s.Instances, s.Packets, spokes*n, st())
					}
				}
			}
		})
	}
}

func spokeUDP(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 51820)
}
