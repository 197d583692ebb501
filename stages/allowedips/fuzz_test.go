package allowedips

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// The fuzz test drives the table and a reference map with the same
// operations (insert, remove, replace a peer's prefixes, remove a peer),
// in batches, and after each batch checks every lookup in a small address
// space, every exact match, and every peer's prefix list; and at the end
// checks every published snapshot again, which later batches must not
// have changed.

// alphabet is the byte values addresses are made of: few, so that
// prefixes nest and collide, and both ends of a byte.
var alphabet = [4]byte{0x00, 0x01, 0x80, 0xff}

// fuzzAddr makes the address numbered n (0..255) of the small space: an
// IPv4 address of alphabet bytes, or an IPv6 one whose bytes 0, 1, 7 and
// 15 are, and the rest zero.
func fuzzAddr(n byte, v6 bool) netip.Addr {
	b := [4]byte{alphabet[n&3], alphabet[n>>2&3], alphabet[n>>4&3], alphabet[n>>6]}
	if !v6 {
		return netip.AddrFrom4(b)
	}
	var a [16]byte
	a[0], a[1], a[7], a[15] = b[0], b[1], b[2], b[3]
	return netip.AddrFrom16(a)
}

type model struct {
	owner map[netip.Prefix]int
}

func (m *model) lookup(a netip.Addr) (int, bool) {
	best, bestBits := 0, -1
	for p, peer := range m.owner {
		if p.Contains(a) && p.Bits() > bestBits {
			best, bestBits = peer, p.Bits()
		}
	}
	return best, bestBits >= 0
}

func (m *model) prefixes(peer int) []netip.Prefix {
	var out []netip.Prefix
	for p, o := range m.owner {
		if o == peer {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return out
}

func (m *model) clone() *model {
	c := &model{owner: make(map[netip.Prefix]int, len(m.owner))}
	for p, o := range m.owner {
		c.owner[p] = o
	}
	return c
}

const fuzzPeers = 5

func checkSnapshot(t *testing.T, s *Snapshot[int], m *model) {
	t.Helper()
	for _, root := range []*node[int]{s.v4, s.v6} {
		if root != nil {
			if err := validate(root, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.Len() != len(m.owner) {
		t.Fatalf("Len = %d, model has %d", s.Len(), len(m.owner))
	}
	for _, v6 := range []bool{false, true} {
		for n := range 256 {
			a := fuzzAddr(byte(n), v6)
			got, ok := s.Lookup(a)
			want, wok := m.lookup(a)
			if got != want || ok != wok {
				t.Fatalf("Lookup(%s) = %d, %v; model %d, %v", a, got, ok, want, wok)
			}
		}
	}
	for p, o := range m.owner {
		if got, ok := s.Get(p); !ok || got != o {
			t.Fatalf("Get(%s) = %d, %v; model %d", p, got, ok, o)
		}
	}
	for peer := range fuzzPeers {
		if got, want := s.Prefixes(peer), m.prefixes(peer); !slices.Equal(got, want) {
			t.Fatalf("Prefixes(%d) = %v; model %v", peer, got, want)
		}
	}
}

// run applies ops (4 bytes each) to a fresh table and the model.
func run(t *testing.T, ops []byte) {
	s := &Snapshot[int]{}
	m := &model{owner: map[netip.Prefix]int{}}
	type published struct {
		s *Snapshot[int]
		m *model
	}
	var history []published
	tx := s.Txn()
	for i := 0; i+3 < len(ops); i += 4 {
		kind, a, l, peer := ops[i], ops[i+1], ops[i+2], int(ops[i+3])%fuzzPeers
		v6 := kind&0x10 != 0
		maxBits := 32
		if v6 {
			maxBits = 128
		}
		pfx := netip.PrefixFrom(fuzzAddr(a, v6), int(l)%(maxBits+1)).Masked()
		switch kind & 7 {
		case 0, 1, 2:
			tx.Insert(pfx, peer)
			m.owner[pfx] = peer
		case 3, 4:
			tx.Remove(pfx)
			delete(m.owner, pfx)
		case 5:
			tx.RemovePeer(peer)
			for p, o := range m.owner {
				if o == peer {
					delete(m.owner, p)
				}
			}
		case 6:
			// Replace the peer's prefixes with pfx, as a `wg set ...
			// allowed-ips` does.
			tx.RemovePeer(peer)
			for p, o := range m.owner {
				if o == peer {
					delete(m.owner, p)
				}
			}
			tx.Insert(pfx, peer)
			m.owner[pfx] = peer
		case 7:
			if got, want := tx.Prefixes(peer), m.prefixes(peer); !slices.Equal(got, want) {
				t.Fatalf("Txn.Prefixes(%d) = %v; model %v", peer, got, want)
			}
		}
		if kind&0xc0 == 0xc0 {
			s = tx.Snapshot()
			checkSnapshot(t, s, m)
			history = append(history, published{s, m.clone()})
		}
	}
	s = tx.Snapshot()
	checkSnapshot(t, s, m)
	for _, h := range history {
		checkSnapshot(t, h.s, h.m)
	}
	// Everything removed, the trie is empty again: no node is left behind.
	tx = s.Txn()
	for peer := range fuzzPeers {
		tx.RemovePeer(peer)
	}
	if s = tx.Snapshot(); s.v4 != nil || s.v6 != nil || s.Len() != 0 || s.owners.Len() != 0 {
		t.Fatalf("after removing every peer: %d nodes, %d entries, %d owners left", s.v4.nodes()+s.v6.nodes(), s.Len(), s.owners.Len())
	}
}

func FuzzAgainstReference(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 4 {
		ops := make([]byte, 4*32)
		for i := range ops {
			ops[i] = byte(r.Uint32())
		}
		f.Add(ops)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		// The checks grow with the square of the batches: bound the run.
		run(t, ops[:min(len(ops), 4*128)])
	})
}

// TestAgainstReferenceLong runs the fuzz test's body on long random
// sequences, so that plain `go test` covers deep tries and many batches.
func TestAgainstReferenceLong(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		ops := make([]byte, 4*600)
		for i := range ops {
			ops[i] = byte(r.Uint32())
		}
		// Longer prefixes more often, so that leaves meet in deep slots.
		for i := 2; i < len(ops); i += 4 {
			if ops[i]&1 == 0 {
				ops[i] = 24 + ops[i]%9
				if ops[i-2]&0x10 != 0 {
					ops[i] = 100 + ops[i]%29
				}
			}
		}
		run(t, ops)
	}
}

// comparePrefixes is the order Prefixes promises, written on netip
// values, independently of the table's own (compareKeys on its keys).
func comparePrefixes(a, b netip.Prefix) int {
	if a4, b4 := a.Addr().Is4(), b.Addr().Is4(); a4 != b4 {
		if a4 {
			return -1
		}
		return 1
	}
	if a.Bits() != b.Bits() {
		return b.Bits() - a.Bits()
	}
	return a.Addr().Compare(b.Addr())
}

// validate checks the trie's shape below n: every child deeper than its
// parent and on its path, every prefix where it belongs, and no node
// that removals should have folded away (one entry and no child, or no
// entry and one child; the root excepted).
func validate(n *node[int], root bool) error {
	d := int(n.depth)
	entries := len(n.pfxs) + len(n.leaves)
	if !root && (len(n.kids) == 0 && entries <= 1 || entries == 0 && len(n.kids) == 1) {
		return fmt.Errorf("node at depth %d with %d entries and %d children was not folded", d, entries, len(n.kids))
	}
	if n.pfxMap.count() != len(n.pfxs) || n.kidMap.count() != len(n.kids) || n.leafMap.count() != len(n.leaves) {
		return fmt.Errorf("node at depth %d: bitmaps and arrays disagree", d)
	}
	for _, x := range n.pfxs {
		if idx, ok := x.k.home(d); !ok || !n.pfxMap.test(idx) || !n.below(x.k) {
			return fmt.Errorf("prefix %v misplaced at depth %d", x.k, d)
		}
	}
	for i, x := range n.leaves {
		o := octet(x.k.hi, x.k.lo, d)
		if int(x.k.bits) < 8*d+8 || !n.below(x.k) || !n.leafMap.test(o) || n.leafMap.rank(o) != i || n.kidMap.test(o) {
			return fmt.Errorf("leaf %v misplaced at depth %d", x.k, d)
		}
	}
	for i, kid := range n.kids {
		o := octet(kid.path.hi, kid.path.lo, d)
		if int(kid.depth) <= d || !n.below(kid.path) || !n.kidMap.test(o) || n.kidMap.rank(o) != i {
			return fmt.Errorf("child at depth %d misplaced under depth %d", kid.depth, d)
		}
		if err := validate(kid, false); err != nil {
			return err
		}
	}
	return nil
}

func (b *bitset) count() int {
	return bits.OnesCount64(b[0]) + bits.OnesCount64(b[1]) + bits.OnesCount64(b[2]) + bits.OnesCount64(b[3])
}
