package allowedips

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func TestLookupTable(t *testing.T) {
	var tab Table[string]
	for p, peer := range map[string]string{
		"10.0.0.0/8":      "a",
		"10.1.0.0/16":     "b",
		"10.1.2.3/32":     "c",
		"0.0.0.0/0":       "default4",
		"fd00::/8":        "v6a",
		"fd00:1::/64":     "v6b",
		"fd00:1::7/128":   "v6c",
		"192.168.77.5/24": "masked", // host bits are masked away
	} {
		tab.Insert(netip.MustParsePrefix(p), peer)
	}
	tests := []struct {
		addr string
		want string // "" means no match
	}{
		{"10.9.9.9", "a"},
		{"10.1.9.9", "b"},
		{"10.1.2.3", "c"},
		{"10.1.2.4", "b"},
		{"11.0.0.1", "default4"},
		{"192.168.77.200", "masked"},
		{"fd00::1", "v6a"},
		{"fd00:1::1", "v6b"},
		{"fd00:1::7", "v6c"},
		{"fe80::1", ""},
		{"::ffff:10.0.0.1", ""}, // a v4-mapped address is IPv6 on the wire
	}
	for _, tt := range tests {
		got, ok := tab.Lookup(netip.MustParseAddr(tt.addr))
		if (tt.want == "") == ok || got != tt.want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", tt.addr, got, ok, tt.want)
		}
	}
}

func TestZeroValueAndInvalid(t *testing.T) {
	var tab Table[int]
	if _, ok := tab.Lookup(netip.MustParseAddr("1.2.3.4")); ok {
		t.Fatal("empty table matched")
	}
	tab.Insert(netip.Prefix{}, 1)
	if _, ok := tab.Lookup(netip.Addr{}); ok {
		t.Fatal("invalid address matched")
	}
	if got := tab.Prefixes(1); len(got) != 0 {
		t.Fatalf("invalid prefix was inserted: %v", got)
	}
}

func TestReplaceRemoveAndRemovePeer(t *testing.T) {
	var tab Table[string]
	p := netip.MustParsePrefix("10.0.0.0/24")
	tab.Insert(p, "a")
	tab.Insert(p, "b") // a prefix belongs to one peer: the latest
	if got, _ := tab.Lookup(netip.MustParseAddr("10.0.0.1")); got != "b" {
		t.Fatalf("after replace got %q, want b", got)
	}
	tab.Insert(netip.MustParsePrefix("10.0.1.0/24"), "b")
	tab.Insert(netip.MustParsePrefix("fd::/16"), "b")
	tab.Insert(netip.MustParsePrefix("10.0.2.0/24"), "c")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("fd::/16")}
	if got := tab.Prefixes("b"); !slices.Equal(got, want) {
		t.Fatalf("Prefixes(b) = %v, want %v", got, want)
	}
	tab.Remove(p)
	if _, ok := tab.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Fatal("removed prefix still matches")
	}
	tab.RemovePeer("b")
	if got := tab.Prefixes("b"); len(got) != 0 {
		t.Fatalf("RemovePeer left %v", got)
	}
	if got, _ := tab.Lookup(netip.MustParseAddr("10.0.2.9")); got != "c" {
		t.Fatalf("other peer lost its prefix: %q", got)
	}
}

// reference is the obvious linear longest-prefix match the table must agree
// with.
type reference map[netip.Prefix]int

func (r reference) lookup(a netip.Addr) (int, bool) {
	best, bestBits := 0, -1
	for p, peer := range r {
		if p.Contains(a) && p.Bits() > bestBits {
			best, bestBits = peer, p.Bits()
		}
	}
	return best, bestBits >= 0
}

func randomAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		b[0] = 0xfd
		for i := 1; i < 16; i++ {
			b[i] = byte(r.IntN(4)) // few values, so prefixes overlap
		}
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(4))})
}

func TestAgreesWithLinearReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tab Table[int]
	ref := reference{}
	for i := range 2000 {
		v6 := r.IntN(2) == 0
		maxBits := 32
		if v6 {
			maxBits = 128
		}
		p := netip.PrefixFrom(randomAddr(r, v6), r.IntN(maxBits+1)).Masked()
		if r.IntN(5) == 0 {
			tab.Remove(p)
			delete(ref, p)
		} else {
			tab.Insert(p, i)
			ref[p] = i
		}
		if i%50 != 0 {
			continue
		}
		for range 200 {
			a := randomAddr(r, r.IntN(2) == 0)
			got, gotOK := tab.Lookup(a)
			want, wantOK := ref.lookup(a)
			if got != want || gotOK != wantOK {
				t.Fatalf("Lookup(%s) = %d,%v; reference %d,%v", a, got, gotOK, want, wantOK)
			}
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	var tab Table[*int]
	peer := new(int)
	tab.Insert(netip.MustParsePrefix("10.0.0.0/8"), peer)
	tab.Insert(netip.MustParsePrefix("fd00::/64"), peer)
	a4, a6 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00::9")
	if n := testing.AllocsPerRun(1000, func() {
		tab.Lookup(a4)
		tab.Lookup(a6)
	}); n != 0 {
		t.Fatalf("Lookup allocates %v times per call", n)
	}
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	var tab Table[int]
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", w, i%256))
				tab.Insert(p, i)
				if i%3 == 0 {
					tab.Remove(p)
				}
			}
		})
	}
	for range 2 {
		readers.Go(func() {
			for i := range 20000 {
				tab.Lookup(netip.AddrFrom4([4]byte{10, byte(i % 2), byte(i), 1}))
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
}

// BenchmarkLookup10kPeers checks that the table stays fast at 10,000 peers,
// each with a /32 and a /128, plus a few wider routes.
func BenchmarkLookup10kPeers(b *testing.B) {
	var tab Table[int]
	for i := range 10000 {
		tab.Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), i)
		var a [16]byte
		a[0], a[14], a[15] = 0xfd, byte(i>>8), byte(i)
		tab.Insert(netip.PrefixFrom(netip.AddrFrom16(a), 128), i)
	}
	tab.Insert(netip.MustParsePrefix("10.0.0.0/8"), -1)
	tab.Insert(netip.MustParsePrefix("fd00::/8"), -1)
	addrs := []netip.Addr{netip.MustParseAddr("10.0.30.7"), netip.MustParseAddr("10.200.0.1"), netip.MustParseAddr("fd00::1e07")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tab.Lookup(addrs[i%len(addrs)])
	}
}
