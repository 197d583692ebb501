// Package pvec is a persistent sparse vector indexed by uint32: a Vec
// value never changes, and a change makes a new Vec that shares every
// chunk it did not touch with the old one. Readers take no lock and never
// see a change half made.
//
// It is built for dense indices handed out in order (the tunnel's peer
// IDs): a lookup is two loads, and iteration is in index order. The
// indices are split into chunks of 256 slots behind one directory; a
// chunk left empty is freed, so indices that are no longer used cost
// only their directory entry (8 bytes per 256 indices).
//
// Changes are made in a Txn, which copies the directory and each chunk
// the first time it changes them and then changes its copies in place:
// a batch of k changes costs O(k) plus one copy of each touched chunk
// (256 slots) and, if it touched any, of the directory (n/256 pointers).
package pvec

import (
	"iter"
	"slices"
)

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
)

// edit marks the chunks a Txn made or copied, which it may change in
// place. Its size is not zero, so that every token is a distinct pointer.
type edit struct{ _ byte }

type chunk[V comparable] struct {
	edit  *edit
	used  int // slots that are not zero
	slots [chunkSize]V
}

// Vec is an immutable sparse vector of V; a slot holding V's zero value
// is empty. The zero value is an empty vector ready to use. A Vec is
// safe for concurrent use by any number of readers.
type Vec[V comparable] struct {
	dir []*chunk[V] // nil entries: chunks with no slot in use
	n   int
}

// Len returns the number of slots in use.
func (v Vec[V]) Len() int { return v.n }

// Get returns the value at i, and whether the slot is in use. It does not
// allocate.
func (v Vec[V]) Get(i uint32) (V, bool) {
	var zero V
	c := i >> chunkBits
	if c >= uint32(len(v.dir)) || v.dir[c] == nil {
		return zero, false
	}
	x := v.dir[c].slots[i&(chunkSize-1)]
	return x, x != zero
}

// All yields the slots in use, in index order.
func (v Vec[V]) All() iter.Seq2[uint32, V] {
	return func(yield func(uint32, V) bool) {
		var zero V
		for ci, c := range v.dir {
			if c == nil {
				continue
			}
			for j := range c.slots {
				if c.slots[j] != zero && !yield(uint32(ci)<<chunkBits|uint32(j), c.slots[j]) {
					return
				}
			}
		}
	}
}

// Txn is a batch of changes to a Vec. Make one with Vec.Txn, change it,
// and take the result with Vec. The Vec it started from is not changed.
// A Txn is not safe for concurrent use.
type Txn[V comparable] struct {
	v        Vec[V]
	edit     *edit
	dirOwned bool // v.dir is this Txn's copy
}

// Txn starts a batch of changes from v.
func (v Vec[V]) Txn() *Txn[V] { return &Txn[V]{v: v, edit: new(edit)} }

// Vec returns the vector with the changes made so far. The Txn may go on
// changing; what the returned vector holds is copied again first.
func (t *Txn[V]) Vec() Vec[V] {
	t.edit, t.dirOwned = new(edit), false
	return t.v
}

// Get returns the value at i with the changes made so far.
func (t *Txn[V]) Get(i uint32) (V, bool) { return t.v.Get(i) }

// Len returns the number of slots in use with the changes made so far.
func (t *Txn[V]) Len() int { return t.v.n }

// Set stores x at i; storing the zero value empties the slot.
func (t *Txn[V]) Set(i uint32, x V) {
	var zero V
	ci := int(i >> chunkBits)
	if x == zero && (ci >= len(t.v.dir) || t.v.dir[ci] == nil) {
		return
	}
	if !t.dirOwned {
		t.v.dir = slices.Clone(t.v.dir)
		t.dirOwned = true
	}
	if ci >= len(t.v.dir) {
		t.v.dir = append(t.v.dir, make([]*chunk[V], ci+1-len(t.v.dir))...)
	}
	c := t.v.dir[ci]
	switch {
	case c == nil:
		c = &chunk[V]{edit: t.edit}
	case c.edit != t.edit:
		cp := *c
		cp.edit = t.edit
		c = &cp
	}
	t.v.dir[ci] = c
	old := &c.slots[i&(chunkSize-1)]
	switch {
	case *old == zero && x != zero:
		c.used++
		t.v.n++
	case *old != zero && x == zero:
		c.used--
		t.v.n--
	}
	*old = x
	if c.used == 0 {
		t.v.dir[ci] = nil
		for len(t.v.dir) > 0 && t.v.dir[len(t.v.dir)-1] == nil {
			t.v.dir = t.v.dir[:len(t.v.dir)-1]
		}
	}
}
