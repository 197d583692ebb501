package allowedips

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"pipeguard/internal/cputime"
)

// Benchmarks at the scales a gateway meets: 10^4 to 10^6 entries. Each
// reports a per-entry figure so that linearity shows as a flat column.

// randomPrefixes returns n distinct /32s (v4) or /128s (v6) at random,
// and n/8 wider routes that overlap them (/16 to /24, /48 to /64), the
// shape of a gateway's table: a host route per peer and some subnets.
func randomPrefixes(n int, v6 bool, seed uint64) (hosts, nets []netip.Prefix) {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := make(map[netip.Prefix]bool, n)
	for len(hosts) < n {
		var p netip.Prefix
		if v6 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], 0xfd00_0000_0000_0000|r.Uint64()>>40<<16)
			binary.BigEndian.PutUint64(b[8:], r.Uint64())
			p = netip.PrefixFrom(netip.AddrFrom16(b), 128)
		} else {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], r.Uint32())
			p = netip.PrefixFrom(netip.AddrFrom4(b), 32)
		}
		if !seen[p] {
			seen[p] = true
			hosts = append(hosts, p)
		}
	}
	for i := range n / 8 {
		h := hosts[i*8]
		bits := 16 + r.IntN(9)
		if v6 {
			bits = 48 + r.IntN(17)
		}
		nets = append(nets, netip.PrefixFrom(h.Addr(), bits).Masked())
	}
	return hosts, nets
}

type benchPeer struct{ id int }

func buildTable(hosts, nets []netip.Prefix) *Snapshot[*benchPeer] {
	peers := make([]benchPeer, len(hosts))
	tx := (&Snapshot[*benchPeer]{}).Txn()
	for i, p := range hosts {
		peers[i].id = i
		tx.Insert(p, &peers[i])
	}
	for i, p := range nets {
		tx.Insert(p, &peers[i])
	}
	return tx.Snapshot()
}

// BenchmarkLookup is the data path's lookup in a table of n host routes
// plus n/8 subnets. "all" looks up addresses spread over the whole table
// (at 10^6 nearly every lookup misses the caches: a bound on the cost,
// not its usual value); "hot" looks up 1024 of them over and over, as a
// gateway whose active peers are a small share of its peers does.
func BenchmarkLookup(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{1_000, 100_000, 1_000_000} {
			for _, hot := range []bool{false, true} {
				fam, set := "v4", "all"
				if v6 {
					fam = "v6"
				}
				if hot {
					set = "hot"
				}
				b.Run(fmt.Sprintf("%s/%s/%d", fam, set, n), func(b *testing.B) {
					benchLookup(b, n, v6, hot)
				})
			}
		}
	}
}

func benchLookup(b *testing.B, n int, v6, hot bool) {
	hosts, nets := randomPrefixes(n, v6, 1)
	s := buildTable(hosts, nets)
	addrs := make([]netip.Addr, len(hosts))
	for i, j := range rand.New(rand.NewPCG(2, 2)).Perm(len(hosts)) {
		addrs[i] = hosts[j].Addr()
	}
	if hot {
		addrs = addrs[:min(len(addrs), 1024)]
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	for i := range b.N {
		if _, ok := s.Lookup(addrs[i%len(addrs)]); !ok {
			b.Fatal("no match")
		}
	}
	cpu.Report(b)
}

// BenchmarkSetManyAllowedIPs builds a table in one Txn: n peers, each
// with a /32 and a /128, as one `wg setconf` of n peers does. ns/entry
// stays flat from 10^4 to 10^6: the writes are linear.
func BenchmarkSetManyAllowedIPs(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v4, _ := randomPrefixes(n, false, 3)
			v6, _ := randomPrefixes(n, true, 4)
			peers := make([]benchPeer, n)
			b.ResetTimer()
			cpu := cputime.Start()
			for range b.N {
				tx := (&Snapshot[*benchPeer]{}).Txn()
				for i := range peers {
					tx.Insert(v4[i], &peers[i])
					tx.Insert(v6[i], &peers[i])
				}
				tx.Snapshot()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(2*n), "ns/entry")
			cpu.Report(b)
		})
	}
}

// selftestPrefixes are the kernel selftest's 130,560 allowed IPs of one
// peer: every a.b.0.0/16 and a::b/128 for a in 1..255, b in 0..255
// (written in decimal, so read as hex groups, as the shell script does).
func selftestPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, 255*256*2)
	for a := 1; a <= 255; a++ {
		for b := 0; b <= 255; b++ {
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a), byte(b), 0, 0}), 16),
				netip.MustParsePrefix(fmt.Sprintf("%d::%d/128", a, b)))
		}
	}
	return out
}

// BenchmarkSelftestOnePeer sets the selftest's 130,560 prefixes on one
// peer in one Txn and reads them back, as `wg setconf` then `wg show
// allowed-ips` do.
func BenchmarkSelftestOnePeer(b *testing.B) {
	pfxs := selftestPrefixes()
	peer := &benchPeer{}
	cpu := cputime.Start()
	defer cpu.Report(b)
	for range b.N {
		tx := (&Snapshot[*benchPeer]{}).Txn()
		for _, p := range pfxs {
			tx.Insert(p, peer)
		}
		if got := len(tx.Snapshot().Prefixes(peer)); got != len(pfxs) {
			b.Fatalf("read back %d prefixes, want %d", got, len(pfxs))
		}
	}
}

// BenchmarkChangeOne is one peer added to a table of n peers and
// published, as `wg set IFACE peer K allowed-ips A/32,B/128` does: the
// nodes on two paths are copied, whatever n.
func BenchmarkChangeOne(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v4, _ := randomPrefixes(n+1024, false, 5)
			v6, _ := randomPrefixes(n+1024, true, 6)
			peers := make([]benchPeer, n+1024)
			tx := (&Snapshot[*benchPeer]{}).Txn()
			for i := range n {
				tx.Insert(v4[i], &peers[i])
				tx.Insert(v6[i], &peers[i])
			}
			s := tx.Snapshot()
			b.ResetTimer()
			cpu := cputime.Start()
			defer cpu.Report(b)
			for i := range b.N {
				j := n + i%1024
				tx := s.Txn()
				if i%2048 < 1024 {
					tx.Insert(v4[j], &peers[j])
					tx.Insert(v6[j], &peers[j])
				} else {
					tx.RemovePeer(&peers[j])
				}
				s = tx.Snapshot()
			}
		})
	}
}
