package allowedips

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// The trie: a multibit trie of stride 8 (one level per address byte: 4
// for IPv4, 16 for IPv6), in the shape Knuth's Allotment Routing Table
// and github.com/gaissmai/bart use, written here for batched persistent
// writes:
//
//   - a prefix whose length ends inside a node's byte (0 to 7 bits of
//     it) is stored in that node at its ART index, 1..255, the position
//     of the prefix in a complete binary tree of the byte's prefixes;
//     the longest of those that contains an address byte is the highest
//     index in the intersection with a precomputed set (lpmMasks);
//   - a slot (the next byte) holds either a child node or, when only one
//     prefix lies below it, that prefix as a leaf (path compression: a
//     /32 among few costs a leaf, not four nodes);
//   - a child node sits at the first byte where the prefixes below it
//     differ, or where one of them ends, not necessarily at the next
//     byte: bytes all of them share are skipped, and the node keeps them
//     (path) to check an address against. So the /128s of a gateway's
//     /64 cost one node for the /64's eight shared bytes, not eight;
//   - each of the three kinds lives in a popcount-compressed array
//     indexed by a 256-bit bitmap.
//
// A lookup visits at most one node per address byte, usually far fewer,
// and checks at most one leaf, then, if that leaf does not contain the
// address, the nodes it passed, deepest first: no locks, no allocation.

// bitset is a set of 256 indices.
type bitset [4]uint64

func (b *bitset) test(i uint) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b *bitset) set(i uint)       { b[i>>6] |= 1 << (i & 63) }
func (b *bitset) clear(i uint)     { b[i>>6] &^= 1 << (i & 63) }
func (b *bitset) empty() bool      { return b[0]|b[1]|b[2]|b[3] == 0 }

// rank is the number of indices below i: the position of i's entry in a
// popcount-compressed array.
func (b *bitset) rank(i uint) int {
	w := i >> 6
	n := bits.OnesCount64(b[w] & (1<<(i&63) - 1))
	for j := range w {
		n += bits.OnesCount64(b[j])
	}
	return n
}

// top returns the highest index in both b and m.
func (b *bitset) top(m *bitset) (uint, bool) {
	for w := 3; w >= 0; w-- {
		if x := b[w] & m[w]; x != 0 {
			return uint(w)<<6 | uint(63-bits.LeadingZeros64(x)), true
		}
	}
	return 0, false
}

// lpmMasks[o] holds the ART indices of the 8 prefixes of a node's byte
// (lengths 0 to 7) that contain byte value o.
var lpmMasks = func() (m [256]bitset) {
	for o := range uint(256) {
		for r := range uint(8) {
			m[o].set(1<<r | o>>(8-r))
		}
	}
	return m
}()

// key is a masked prefix: its address as two big-endian words (an IPv4
// address in the top 32 bits of hi) and its length.
type key struct {
	hi, lo uint64
	bits   uint8
}

func keyOf(p netip.Prefix) key {
	p = p.Masked()
	hi, lo := words(p.Addr())
	return key{hi: hi, lo: lo, bits: uint8(p.Bits())}
}

func words(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func (k key) prefix(v4 bool) netip.Prefix {
	if v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.hi>>32))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(k.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(k.bits))
}

// octet is byte d of the address hi, lo.
func octet(hi, lo uint64, d int) uint {
	if d < 8 {
		return uint(hi>>(56-8*d)) & 0xff
	}
	return uint(lo>>(56-8*(d-8))) & 0xff
}

// contains reports whether the address hi, lo lies in k.
func (k key) contains(hi, lo uint64) bool {
	if k.bits <= 64 {
		return (hi^k.hi)&topBits(k.bits) == 0
	}
	return hi == k.hi && (lo^k.lo)&topBits(k.bits-64) == 0
}

// topBits has the top b bits set, b in 0..64.
func topBits(b uint8) uint64 {
	if b == 0 {
		return 0
	}
	return ^uint64(0) << (64 - uint(b))
}

// home reports whether k is stored at depth d as a node prefix (its
// length ends inside byte d) and if so its ART index. k must not end
// above d.
func (k key) home(d int) (idx uint, ok bool) {
	r := int(k.bits) - 8*d
	if r >= 8 {
		return 0, false
	}
	return 1<<r | octet(k.hi, k.lo, d)>>(8-r), true
}

// pathTo is k's first d bytes: the path of a node at depth d above it.
func pathTo(k key, d int) key {
	b := uint8(8 * d)
	if b <= 64 {
		return key{hi: k.hi & topBits(b), bits: b}
	}
	return key{hi: k.hi, lo: k.lo & topBits(b-64), bits: b}
}

// shared is the number of leading bytes in which a and b agree, at most
// limit.
func shared(a, b key, limit int) int {
	n := 16
	if x := a.hi ^ b.hi; x != 0 {
		n = bits.LeadingZeros64(x) / 8
	} else if x := a.lo ^ b.lo; x != 0 {
		n = 8 + bits.LeadingZeros64(x)/8
	}
	return min(n, limit)
}

// below reports whether k lies in the subtree of n: it ends at or below
// n's byte, and agrees with n's path.
func (n *node[P]) below(k key) bool {
	return int(k.bits) >= 8*int(n.depth) && n.path.contains(k.hi, k.lo)
}

// entry is a prefix and its peer: a node prefix or a leaf.
type entry[P comparable] struct {
	k key
	p P
}

type node[P comparable] struct {
	edit                    *edit // the Txn that may change this node in place; nil: frozen
	depth                   uint8 // the address byte its slots and prefixes are of
	path                    key   // the address's bytes above depth, which all below share
	pfxMap, kidMap, leafMap bitset
	pfxs                    []entry[P] // by ART index
	kids                    []*node[P] // by byte; each deeper than this one
	leaves                  []entry[P] // by byte
}

// newNode makes a node at depth d for the prefixes that agree with k
// above it.
func newNode[P comparable](k key, d int, e *edit) *node[P] {
	return &node[P]{edit: e, depth: uint8(d), path: pathTo(k, d)}
}

// lookup is the longest-prefix match of hi, lo below n, which is a root
// (depth 0).
func (n *node[P]) lookup(hi, lo uint64) (p P, ok bool) {
	var path [16]*node[P]
	d := 0
	for {
		path[d] = n
		o := octet(hi, lo, int(n.depth))
		if n.kidMap.test(o) {
			kid := n.kids[n.kidMap.rank(o)]
			if !kid.path.contains(hi, lo) {
				break // nothing below kid contains the address
			}
			n = kid
			d++
			continue
		}
		if n.leafMap.test(o) {
			if l := &n.leaves[n.leafMap.rank(o)]; l.k.contains(hi, lo) {
				return l.p, true
			}
		}
		break
	}
	for ; d >= 0; d-- {
		n := path[d]
		if n.pfxMap.empty() {
			continue
		}
		if idx, ok := n.pfxMap.top(&lpmMasks[octet(hi, lo, int(n.depth))]); ok {
			return n.pfxs[n.pfxMap.rank(idx)].p, true
		}
	}
	return p, false
}

// get is the exact match of k below n, a root.
func (n *node[P]) get(k key) (p P, ok bool) {
	for n != nil && n.below(k) {
		if idx, home := k.home(int(n.depth)); home {
			if n.pfxMap.test(idx) {
				return n.pfxs[n.pfxMap.rank(idx)].p, true
			}
			return p, false
		}
		o := octet(k.hi, k.lo, int(n.depth))
		switch {
		case n.kidMap.test(o):
			n = n.kids[n.kidMap.rank(o)]
		case n.leafMap.test(o):
			if l := n.leaves[n.leafMap.rank(o)]; l.k == k {
				return l.p, true
			}
			return p, false
		default:
			return p, false
		}
	}
	return p, false
}

// writable returns n, or a copy of it that the Txn owning e may change;
// a nil n is a new root.
func writable[P comparable](n *node[P], e *edit) *node[P] {
	if n == nil {
		return &node[P]{edit: e}
	}
	if n.edit == e {
		return n
	}
	c := *n
	c.edit = e
	c.pfxs, c.kids, c.leaves = slices.Clone(n.pfxs), slices.Clone(n.kids), slices.Clone(n.leaves)
	return &c
}

// insert puts x below n (writable, and x below it), and returns the peer
// its prefix mapped to before.
func insert[P comparable](n *node[P], x entry[P], e *edit) (prev P, had bool) {
	for {
		d := int(n.depth)
		if idx, home := x.k.home(d); home {
			r := n.pfxMap.rank(idx)
			if n.pfxMap.test(idx) {
				prev, n.pfxs[r].p = n.pfxs[r].p, x.p
				return prev, true
			}
			n.pfxMap.set(idx)
			n.pfxs = slices.Insert(n.pfxs, r, x)
			return prev, false
		}
		o := octet(x.k.hi, x.k.lo, d)
		switch {
		case n.kidMap.test(o):
			r := n.kidMap.rank(o)
			kid := n.kids[r]
			if kid.below(x.k) {
				n.kids[r] = writable(kid, e)
				n = n.kids[r]
				continue
			}
			// x parts from kid's path, or ends, above kid: a node
			// between them, where they part.
			split := newNode[P](x.k, shared(x.k, kid.path, min(int(kid.depth), int(x.k.bits)/8)), e)
			split.kidMap.set(octet(kid.path.hi, kid.path.lo, int(split.depth)))
			split.kids = []*node[P]{kid}
			n.kids[r] = split
			return insert(split, x, e)
		case n.leafMap.test(o):
			r := n.leafMap.rank(o)
			old := n.leaves[r]
			if old.k == x.k {
				prev, n.leaves[r].p = old.p, x.p
				return prev, true
			}
			// A second prefix below this slot: both go into a node where
			// they part, or where the shorter one ends.
			kid := newNode[P](x.k, shared(x.k, old.k, int(min(x.k.bits, old.k.bits))/8), e)
			insert(kid, old, e)
			insert(kid, x, e)
			n.leaves = slices.Delete(n.leaves, r, r+1)
			n.leafMap.clear(o)
			n.kidMap.set(o)
			n.kids = slices.Insert(n.kids, n.kidMap.rank(o), kid)
			return prev, false
		default:
			n.leafMap.set(o)
			n.leaves = slices.Insert(n.leaves, n.leafMap.rank(o), x)
			return prev, false
		}
	}
}

// remove deletes k, which is below n (writable), and returns its peer. A
// child left empty goes, one left with a single prefix and no children
// becomes a leaf again, and one left with a single child and nothing else
// gives its slot to that child, so that the trie stays as small as if
// the prefix had never been there.
func remove[P comparable](n *node[P], k key, e *edit) P {
	d := int(n.depth)
	if idx, home := k.home(d); home {
		r := n.pfxMap.rank(idx)
		p := n.pfxs[r].p
		n.pfxMap.clear(idx)
		n.pfxs = slices.Delete(n.pfxs, r, r+1)
		return p
	}
	o := octet(k.hi, k.lo, d)
	if n.leafMap.test(o) {
		r := n.leafMap.rank(o)
		p := n.leaves[r].p
		n.leafMap.clear(o)
		n.leaves = slices.Delete(n.leaves, r, r+1)
		return p
	}
	r := n.kidMap.rank(o)
	kid := writable(n.kids[r], e)
	n.kids[r] = kid
	p := remove(kid, k, e)
	entries := len(kid.pfxs) + len(kid.leaves)
	switch {
	case entries == 0 && len(kid.kids) == 1:
		n.kids[r] = kid.kids[0]
	case len(kid.kids) == 0 && entries <= 1:
		n.kidMap.clear(o)
		n.kids = slices.Delete(n.kids, r, r+1)
		var last entry[P]
		switch {
		case len(kid.pfxs) == 1:
			last = kid.pfxs[0]
		case len(kid.leaves) == 1:
			last = kid.leaves[0]
		default:
			return p
		}
		n.leafMap.set(o)
		n.leaves = slices.Insert(n.leaves, n.leafMap.rank(o), last)
	}
	return p
}

// nodes counts the nodes below and including n, for tests.
func (n *node[P]) nodes() int {
	if n == nil {
		return 0
	}
	c := 1
	for _, k := range n.kids {
		c += k.nodes()
	}
	return c
}
