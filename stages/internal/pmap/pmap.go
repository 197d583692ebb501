// Package pmap is a persistent hash map: a Map value never changes, and a
// change makes a new Map that shares every node it did not touch with the
// old one. Readers of a Map therefore take no lock and never see a change
// half made, which is what the tunnel's configuration snapshots need:
// one request builds its changes and publishes them as one new Map.
//
// Changes are made in a Txn. A Txn copies a node the first time it
// changes it and from then on changes its copy in place, so a batch of k
// changes costs O(k) node visits plus one copy of each node it touched,
// never a copy per change, and never a copy of the whole map.
//
// The map is a hash array mapped trie: 64 children a node, indexed by 6
// bits of the key's 64-bit hash from the top, with popcount-compressed
// child arrays, and a key stored as a leaf at the first level where no
// other key shares its hash bits. With n keys and a hash that spreads
// them, a lookup visits about log64(n) + 1 nodes: 3 at 10^4 keys, 4 at
// 10^6. One entry costs its leaf (the hash, the key and the value) and a
// share of the nodes above it: about 16 bytes more than the leaf at
// 10^5 random keys.
package pmap

import (
	"iter"
	"math/bits"
	"slices"
)

// levels is how many 6-bit digits the 64-bit hash has: ten of 6 bits and
// a last one of 4. Keys whose hashes are equal in all of them share a
// collision node at depth levels, whose leaves are a plain list.
const levels = 11

// digit is the slot of hash h in a node at depth d (d < levels).
func digit(h uint64, d int) uint {
	if d == levels-1 {
		return uint(h & 15)
	}
	return uint(h>>(58-6*d)) & 63
}

// edit marks the nodes a Txn made or copied, which it may change in
// place. Its size is not zero, so that every token is a distinct pointer.
type edit struct{ _ byte }

type node[K comparable, V any] struct {
	edit   *edit  // the Txn that may change this node in place; nil: frozen
	kidMap uint64 // slots holding a child node
	leafMp uint64 // slots holding a leaf
	kids   []*node[K, V]
	leaves []leaf[K, V]
}

type leaf[K comparable, V any] struct {
	h uint64
	k K
	v V
}

// rank is the position in a popcount-compressed array of slot i.
func rank(m uint64, i uint) int { return bits.OnesCount64(m & (1<<i - 1)) }

// Map is an immutable map from K to V. Make one with New; the zero value
// is an empty map that must not be changed (it has no hash function).
// A Map is safe for concurrent use by any number of readers.
type Map[K comparable, V any] struct {
	root *node[K, V]
	n    int
	hash func(K) uint64
}

// New returns an empty map whose keys are hashed with hash, which should
// spread them over all 64 bits: keys are placed by their hash's top bits
// first, and keys with equal hashes cost a linear search.
func New[K comparable, V any](hash func(K) uint64) Map[K, V] {
	return Map[K, V]{hash: hash}
}

// Len returns the number of keys.
func (m Map[K, V]) Len() int { return m.n }

// Get returns the value of k. It does not allocate.
func (m Map[K, V]) Get(k K) (v V, ok bool) {
	if m.root == nil {
		return v, false
	}
	h := m.hash(k)
	n := m.root
	for d := 0; d < levels; d++ {
		i := digit(h, d)
		bit := uint64(1) << i
		if n.kidMap&bit != 0 {
			n = n.kids[rank(n.kidMap, i)]
			continue
		}
		if n.leafMp&bit != 0 {
			if l := &n.leaves[rank(n.leafMp, i)]; l.h == h && l.k == k {
				return l.v, true
			}
		}
		return v, false
	}
	for i := range n.leaves {
		if n.leaves[i].k == k {
			return n.leaves[i].v, true
		}
	}
	return v, false
}

// All yields every key and value, in the order of their hashes.
func (m Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if m.root != nil {
			m.root.all(0, yield)
		}
	}
}

func (n *node[K, V]) all(d int, yield func(K, V) bool) bool {
	if d == levels {
		for _, l := range n.leaves {
			if !yield(l.k, l.v) {
				return false
			}
		}
		return true
	}
	for i := range uint(64) {
		bit := uint64(1) << i
		switch {
		case n.kidMap&bit != 0:
			if !n.kids[rank(n.kidMap, i)].all(d+1, yield) {
				return false
			}
		case n.leafMp&bit != 0:
			l := &n.leaves[rank(n.leafMp, i)]
			if !yield(l.k, l.v) {
				return false
			}
		}
	}
	return true
}

// Txn is a batch of changes to a Map. Make one with Map.Txn, change it,
// and take the result with Map. The Map it started from is not changed.
// A Txn is not safe for concurrent use.
type Txn[K comparable, V any] struct {
	m    Map[K, V]
	edit *edit
}

// Txn starts a batch of changes from m.
func (m Map[K, V]) Txn() *Txn[K, V] {
	return &Txn[K, V]{m: m, edit: new(edit)}
}

// Map returns the map with the changes made so far. The Txn may go on
// changing: nodes the returned map holds are frozen, and copied again
// when the Txn next changes them.
func (t *Txn[K, V]) Map() Map[K, V] {
	m := t.m
	t.edit = new(edit)
	return m
}

// Len returns the number of keys with the changes made so far.
func (t *Txn[K, V]) Len() int { return t.m.n }

// Get returns the value of k with the changes made so far.
func (t *Txn[K, V]) Get(k K) (V, bool) { return t.m.Get(k) }

// writable returns n, or a copy of it this Txn may change.
func (t *Txn[K, V]) writable(n *node[K, V]) *node[K, V] {
	if n == nil {
		return &node[K, V]{edit: t.edit}
	}
	if n.edit == t.edit {
		return n
	}
	return &node[K, V]{edit: t.edit, kidMap: n.kidMap, leafMp: n.leafMp,
		kids: slices.Clone(n.kids), leaves: slices.Clone(n.leaves)}
}

// Set maps k to v.
func (t *Txn[K, V]) Set(k K, v V) {
	h := t.m.hash(k)
	t.m.root = t.writable(t.m.root)
	if t.set(t.m.root, 0, leaf[K, V]{h: h, k: k, v: v}) {
		t.m.n++
	}
}

// set puts l under n (writable, at depth d) and reports whether its key
// is new.
func (t *Txn[K, V]) set(n *node[K, V], d int, l leaf[K, V]) bool {
	for ; d < levels; d++ {
		i := digit(l.h, d)
		bit := uint64(1) << i
		switch {
		case n.kidMap&bit != 0:
			r := rank(n.kidMap, i)
			n.kids[r] = t.writable(n.kids[r])
			n = n.kids[r]
		case n.leafMp&bit != 0:
			r := rank(n.leafMp, i)
			old := n.leaves[r]
			if old.h == l.h && old.k == l.k {
				n.leaves[r].v = l.v
				return false
			}
			// Two keys share this slot now: push both a level down.
			kid := &node[K, V]{edit: t.edit}
			t.set(kid, d+1, old)
			t.set(kid, d+1, l)
			n.leaves = slices.Delete(n.leaves, r, r+1)
			n.leafMp &^= bit
			n.kidMap |= bit
			n.kids = slices.Insert(n.kids, rank(n.kidMap, i), kid)
			return true
		default:
			n.leafMp |= bit
			n.leaves = slices.Insert(n.leaves, rank(n.leafMp, i), l)
			return true
		}
	}
	for j := range n.leaves {
		if n.leaves[j].k == l.k {
			n.leaves[j].v = l.v
			return false
		}
	}
	n.leaves = append(n.leaves, l)
	return true
}

// Delete removes k and reports whether it was there.
func (t *Txn[K, V]) Delete(k K) bool {
	if _, ok := t.m.Get(k); !ok {
		return false
	}
	h := t.m.hash(k)
	t.m.root = t.writable(t.m.root)
	t.del(t.m.root, 0, h, k)
	t.m.n--
	if t.m.n == 0 {
		t.m.root = nil
	}
	return true
}

// del removes k, which is under n (writable, at depth d). A child left
// with one leaf and no children is folded back into its parent's slot,
// so that the trie stays as shallow as its keys need.
func (t *Txn[K, V]) del(n *node[K, V], d int, h uint64, k K) {
	if d == levels {
		n.leaves = slices.DeleteFunc(n.leaves, func(l leaf[K, V]) bool { return l.k == k })
		return
	}
	i := digit(h, d)
	bit := uint64(1) << i
	if n.leafMp&bit != 0 {
		r := rank(n.leafMp, i)
		n.leaves = slices.Delete(n.leaves, r, r+1)
		n.leafMp &^= bit
		return
	}
	r := rank(n.kidMap, i)
	kid := t.writable(n.kids[r])
	n.kids[r] = kid
	t.del(kid, d+1, h, k)
	if kid.kidMap != 0 || len(kid.leaves) > 1 {
		return
	}
	n.kids = slices.Delete(n.kids, r, r+1)
	n.kidMap &^= bit
	if len(kid.leaves) == 1 {
		n.leafMp |= bit
		n.leaves = slices.Insert(n.leaves, rank(n.leafMp, i), kid.leaves[0])
	}
}
