package bartcmp

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gaissmai/bart"

	"pipeguard/stages/allowedips"
)

type peer struct{ id int }

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

var sizes = []int{1_000, 100_000, 1_000_000}

func addrsOf(hosts []netip.Prefix) []netip.Addr {
	addrs := make([]netip.Addr, len(hosts))
	for i, j := range rand.New(rand.NewPCG(2, 2)).Perm(len(hosts)) {
		addrs[i] = hosts[j].Addr()
	}
	return addrs
}

func BenchmarkLookup(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		for _, n := range sizes {
			hosts, nets := randomPrefixes(n, v6, 1)
			peers := make([]peer, n)
			addrs := addrsOf(hosts)
			tx := (&allowedips.Snapshot[*peer]{}).Txn()
			bt := new(bart.Table[*peer])
			for i, p := range hosts {
				tx.Insert(p, &peers[i])
				bt.Insert(p, &peers[i])
			}
			for i, p := range nets {
				tx.Insert(p, &peers[i])
				bt.Insert(p, &peers[i])
			}
			s := tx.Snapshot()
			fam := map[bool]string{false: "v4", true: "v6"}[v6]
			b.Run(fmt.Sprintf("own/%s/%d", fam, n), func(b *testing.B) {
				for i := range b.N {
					if _, ok := s.Lookup(addrs[i%len(addrs)]); !ok {
						b.Fatal("miss")
					}
				}
			})
			b.Run(fmt.Sprintf("bart/%s/%d", fam, n), func(b *testing.B) {
				for i := range b.N {
					if _, ok := bt.Lookup(addrs[i%len(addrs)]); !ok {
						b.Fatal("miss")
					}
				}
			})
		}
	}
}

// Batch writes: n peers with a /32 and a /128 each, published once.
// own: one Txn. bart-persist: InsertPersist per entry (every entry
// publishes a new table). bart-clone: Clone the table, Insert in place,
// publish the clone (O(table) per batch).
func BenchmarkBatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		v4, _ := randomPrefixes(n, false, 3)
		v6, _ := randomPrefixes(n, true, 4)
		peers := make([]peer, n)
		per := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(2*n), "ns/entry")
		}
		b.Run(fmt.Sprintf("own/%d", n), func(b *testing.B) {
			for range b.N {
				tx := (&allowedips.Snapshot[*peer]{}).Txn()
				for i := range peers {
					tx.Insert(v4[i], &peers[i])
					tx.Insert(v6[i], &peers[i])
				}
				tx.Snapshot()
			}
			per(b)
		})
		b.Run(fmt.Sprintf("bart-persist/%d", n), func(b *testing.B) {
			for range b.N {
				t := new(bart.Table[*peer])
				for i := range peers {
					t = t.InsertPersist(v4[i], &peers[i])
					t = t.InsertPersist(v6[i], &peers[i])
				}
			}
			per(b)
		})
		b.Run(fmt.Sprintf("bart-inplace/%d", n), func(b *testing.B) {
			for range b.N {
				t := new(bart.Table[*peer])
				for i := range peers {
					t.Insert(v4[i], &peers[i])
					t.Insert(v6[i], &peers[i])
				}
			}
			per(b)
		})
	}
}

// One more peer into a table of n, published.
func BenchmarkAddOne(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		v4, _ := randomPrefixes(n+1024, false, 5)
		v6, _ := randomPrefixes(n+1024, true, 6)
		peers := make([]peer, n+1024)
		tx := (&allowedips.Snapshot[*peer]{}).Txn()
		bt := new(bart.Table[*peer])
		for i := range n {
			tx.Insert(v4[i], &peers[i])
			tx.Insert(v6[i], &peers[i])
			bt.Insert(v4[i], &peers[i])
			bt.Insert(v6[i], &peers[i])
		}
		s := tx.Snapshot()
		b.Run(fmt.Sprintf("own/%d", n), func(b *testing.B) {
			for i := range b.N {
				j := n + i%1024
				tx := s.Txn()
				tx.Insert(v4[j], &peers[j])
				tx.Insert(v6[j], &peers[j])
				tx.Snapshot()
			}
		})
		b.Run(fmt.Sprintf("bart-persist/%d", n), func(b *testing.B) {
			for i := range b.N {
				j := n + i%1024
				bt.InsertPersist(v4[j], &peers[j]).InsertPersist(v6[j], &peers[j])
			}
		})
	}
}
