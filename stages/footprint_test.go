package stages

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// peerConfigs makes n peers as a gateway has them: a random key, one
// IPv4 /32 and one IPv6 /128, an endpoint, and a persistent keepalive of
// 25 s on every other one.
func peerConfigs(n int, seed uint64) []PeerConfig {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]PeerConfig, n)
	for i := range out {
		pc := &out[i]
		for j := range pc.PublicKey {
			pc.PublicKey[j] = byte(r.Uint32())
		}
		v4 := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		var b [16]byte
		b[0], b[1], b[13], b[14], b[15] = 0xfd, 0x01, byte(i>>16), byte(i>>8), byte(i)
		pc.AllowedIPs = []netip.Prefix{netip.PrefixFrom(v4, 32), netip.PrefixFrom(netip.AddrFrom16(b), 128)}
		pc.Endpoint = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		if i%2 == 0 {
			pc.PersistentKeepalive = 25 * time.Second
		}
	}
	return out
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// footprint adds n peers to an empty tunnel in one batch and returns the
// heap they hold, per peer.
func footprint(tb testing.TB, n int) float64 {
	conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		tb.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	defer dev.Close()
	defer conn.Close()
	tun, err := New(Config{PrivateKey: mustKey(tb)}, dev, conn, fakeClock(), testLog(tb))
	if err != nil {
		tb.Fatal(err)
	}
	pcs := peerConfigs(n, 1)
	before := heapInUse()
	err = tun.Configure(func(b *Batch) error {
		for _, pc := range pcs {
			if err := b.AddPeer(pc); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	pcs = nil
	after := heapInUse()
	runtime.KeepAlive(tun)
	return float64(after-before) / float64(n)
}

// TestIdlePeerFootprint: an idle peer (no session yet, no traffic) costs
// at most 1.5 KiB of heap, everything the tunnel keeps for it included:
// its state, handshake and session, its place in the peer tables, its
// routes, and its waiting wake-ups.
func TestIdlePeerFootprint(t *testing.T) {
	if got := footprint(t, 20_000); got > 1536 {
		t.Fatalf("an idle peer costs %.0f bytes of heap, want at most 1536", got)
	} else {
		t.Logf("an idle peer costs %.0f bytes of heap", got)
	}
}

// BenchmarkIdlePeerFootprint reports the heap per idle peer at 10^3 to
// 10^5 peers (one batch of n, as one wg setconf).
func BenchmarkIdlePeerFootprint(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var per float64
			for range b.N {
				per = footprint(b, n)
			}
			b.ReportMetric(per, "bytes/peer")
		})
	}
}

// TestGoroutinesDoNotGrowWithPeers: a running tunnel has the same
// goroutines with 5,000 peers, half of them with a persistent keepalive
// that keeps their timers busy, as with none: peers are state, not
// goroutines or timers of their own.
func TestGoroutinesDoNotGrowWithPeers(t *testing.T) {
	e := startTunnel(t, memudp.NewNetwork(), tunnelSpec{udp: netip.MustParseAddrPort("192.0.2.1:51820")})
	settled := func() int {
		// The count of an idle tunnel is steady once its stages have
		// started; wait for two equal readings.
		var n int
		waitFor(t, 10*time.Second, func() bool {
			a := runtime.NumGoroutine()
			time.Sleep(50 * time.Millisecond)
			n = runtime.NumGoroutine()
			return a == n
		}, func() string { return "goroutine count not steady" })
		return n
	}
	before := settled()
	pcs := peerConfigs(5_000, 2)
	err := e.tun.Configure(func(b *Batch) error {
		for _, pc := range pcs {
			if err := b.AddPeer(pc); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := settled(); after != before {
		t.Fatalf("%d goroutines with 5,000 peers, %d with none", after, before)
	}
}
