// Package allowedips is WireGuard's cryptokey routing table: prefixes of
// IPv4 and IPv6 addresses mapped to peers, looked up by longest-prefix
// match. Outbound, the destination picks the peer; inbound, a packet is
// accepted only if its source maps back to the peer that sent it.
//
// The table is built for a data path that reads far more than it writes,
// and for writes that come in large batches (one `wg setconf` of 100,000
// peers, or 130,560 prefixes on one peer):
//
//   - A Snapshot is immutable. Lookups on it take no lock and do not
//     allocate: a multibit trie of stride 8 (trie.go), one node per
//     address byte at most, so the cost grows with the address length,
//     not with the number of entries.
//   - A Txn changes a copy: it copies each node the first time it
//     changes it and then changes the copy in place, and publishes
//     nothing until Snapshot. So a request's writes cost O(entries it
//     changes × address bytes) plus one copy of each node they touched,
//     and readers see the table before the request or after it, never
//     between. Nodes the Txn did not touch stay shared.
//   - Each peer's prefixes are kept beside the trie (a persistent hash
//     map from peer to its sorted prefix list), so Prefixes(peer) costs
//     O(that peer's prefixes) and removing a peer O(its prefixes), never
//     a scan of the whole table.
//
// Costs, per entry: a /32 or /128 among many is a leaf of 32 bytes (with
// a pointer for P), plus its place in its peer's list (32 bytes) and a
// share of the nodes (176 bytes each, one per populated address byte
// range). Lookup: O(address bytes) node visits. Insert or remove in a
// Txn: the same, plus the copy of a touched node once per Txn.
package allowedips

import (
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"pipeguard/stages/internal/pmap"
)

// edit marks the nodes a Txn made or copied, which it may change in
// place. Its size is not zero, so that every token is a distinct pointer.
type edit struct{ _ byte }

// Snapshot is the table at one moment. The zero value is an empty table.
// A Snapshot is immutable, so any number of goroutines may read it; a
// Txn makes the next one.
type Snapshot[P comparable] struct {
	v4, v6 *node[P]
	owners pmap.Map[P, []netip.Prefix] // each peer's prefixes, sorted; zero: no entries yet
	n      int
}

// Len returns the number of prefixes in the table.
func (s *Snapshot[P]) Len() int { return s.n }

// Lookup returns the peer of the longest prefix containing addr. An
// IPv4-mapped IPv6 address is looked up as IPv6, as on the wire. It takes
// no lock and does not allocate.
func (s *Snapshot[P]) Lookup(addr netip.Addr) (peer P, ok bool) {
	root := s.v6
	if addr.Is4() {
		root = s.v4
	} else if !addr.IsValid() {
		return peer, false
	}
	if root == nil {
		return peer, false
	}
	hi, lo := words(addr)
	return root.lookup(hi, lo)
}

// Get returns the peer that prefix (masked) maps to, by exact match.
func (s *Snapshot[P]) Get(prefix netip.Prefix) (peer P, ok bool) {
	root := s.root(prefix)
	if root == nil {
		return peer, false
	}
	return root.get(keyOf(prefix))
}

func (s *Snapshot[P]) root(prefix netip.Prefix) *node[P] {
	switch {
	case !prefix.IsValid():
		return nil
	case prefix.Addr().Is4():
		return s.v4
	default:
		return s.v6
	}
}

// Prefixes returns the prefixes that map to peer, masked, IPv4 first,
// each family from the longest prefix down, then by address: for `wg
// show` and for installing routes. The slice is shared with the table:
// the caller must not change its elements (appending is safe). It costs
// O(log peers), whatever the number of prefixes.
func (s *Snapshot[P]) Prefixes(peer P) []netip.Prefix {
	l, _ := s.owners.Get(peer)
	return l
}

// Txn starts a batch of changes from s; s itself does not change.
func (s *Snapshot[P]) Txn() *Txn[P] {
	t := &Txn[P]{s: *s, edit: new(edit), last: map[P]int32{}}
	if t.s.owners.Len() == 0 {
		t.s.owners = pmap.New[P, []netip.Prefix](hasher[P](maphash.MakeSeed()))
	}
	return t
}

func hasher[P comparable](seed maphash.Seed) func(P) uint64 {
	return func(p P) uint64 { return maphash.Comparable(seed, p) }
}

// Txn is a batch of changes to a Snapshot, published whole by Snapshot.
// It is not safe for concurrent use; readers of the Snapshot it started
// from are not affected by it.
type Txn[P comparable] struct {
	s    Snapshot[P]
	edit *edit
	// log is what happened to peers' prefixes, in order; each peer's
	// entries are chained from its last one (last[peer]) back through
	// prev. Snapshot folds each chain into the peer's list once.
	log  []change[P]
	last map[P]int32
	// chain is scratch space for one peer's changes.
	chain []change[P]
}

type change[P comparable] struct {
	peer   P
	prefix netip.Prefix
	gained bool  // true: peer gained prefix; false: lost it
	prev   int32 // the peer's previous change in the log; -1: none
}

// Lookup is Snapshot.Lookup with the changes made so far.
func (t *Txn[P]) Lookup(addr netip.Addr) (P, bool) { return t.s.Lookup(addr) }

// Get is Snapshot.Get with the changes made so far.
func (t *Txn[P]) Get(prefix netip.Prefix) (P, bool) { return t.s.Get(prefix) }

// Len is the number of prefixes with the changes made so far.
func (t *Txn[P]) Len() int { return t.s.n }

// Insert maps prefix to peer, taking it from the peer it mapped to before
// (in WireGuard a prefix belongs to at most one peer), which it returns.
// The prefix is masked, so 10.0.0.1/24 means 10.0.0.0/24. An invalid
// prefix is ignored.
func (t *Txn[P]) Insert(prefix netip.Prefix, peer P) (prev P, had bool) {
	if !prefix.IsValid() {
		return prev, false
	}
	prefix = prefix.Masked()
	root := &t.s.v6
	if prefix.Addr().Is4() {
		root = &t.s.v4
	}
	*root = writable(*root, t.edit)
	prev, had = insert(*root, 0, entry[P]{k: keyOf(prefix), p: peer}, t.edit)
	switch {
	case !had:
		t.s.n++
	case prev == peer:
		return prev, had
	default:
		t.note(prev, prefix, false)
	}
	t.note(peer, prefix, true)
	return prev, had
}

// Remove deletes prefix (masked), whichever peer it mapped to, and
// returns that peer.
func (t *Txn[P]) Remove(prefix netip.Prefix) (prev P, had bool) {
	if _, ok := t.s.Get(prefix); !ok {
		return prev, false
	}
	prefix = prefix.Masked()
	root := &t.s.v6
	if prefix.Addr().Is4() {
		root = &t.s.v4
	}
	*root = writable(*root, t.edit)
	prev = remove(*root, 0, keyOf(prefix), t.edit)
	if (*root).pfxMap.empty() && (*root).kidMap.empty() && (*root).leafMap.empty() {
		*root = nil
	}
	t.s.n--
	t.note(prev, prefix, false)
	return prev, true
}

// RemovePeer deletes every prefix that maps to peer: O(its prefixes).
func (t *Txn[P]) RemovePeer(peer P) {
	for _, pfx := range t.Prefixes(peer) {
		t.Remove(pfx)
	}
}

// Prefixes is Snapshot.Prefixes with the changes made so far. For a peer
// this Txn changed, it costs O(its prefixes) and allocates.
func (t *Txn[P]) Prefixes(peer P) []netip.Prefix {
	old, _ := t.s.owners.Get(peer)
	last, ok := t.last[peer]
	if !ok {
		return old
	}
	return fold(old, t.chainOf(last))
}

func (t *Txn[P]) note(peer P, prefix netip.Prefix, gained bool) {
	prev, ok := t.last[peer]
	if !ok {
		prev = -1
	}
	t.last[peer] = int32(len(t.log))
	t.log = append(t.log, change[P]{peer: peer, prefix: prefix, gained: gained, prev: prev})
}

// chainOf returns the changes of the peer whose last change is at last,
// in order, in scratch space valid until the next call.
func (t *Txn[P]) chainOf(last int32) []change[P] {
	t.chain = t.chain[:0]
	for i := last; i >= 0; i = t.log[i].prev {
		t.chain = append(t.chain, t.log[i])
	}
	slices.Reverse(t.chain)
	return t.chain
}

// Snapshot returns the table with the changes made so far. The Txn may
// go on changing; nodes the returned Snapshot holds are frozen, and
// copied again when the Txn next changes them.
func (t *Txn[P]) Snapshot() *Snapshot[P] {
	if len(t.last) > 0 {
		owners := t.s.owners.Txn()
		for peer, last := range t.last {
			old, _ := owners.Get(peer)
			if l := fold(old, t.chainOf(last)); len(l) > 0 {
				owners.Set(peer, l)
			} else {
				owners.Delete(peer)
			}
		}
		t.s.owners = owners.Map()
		clear(t.last)
		t.log = t.log[:0]
	}
	s := t.s
	t.edit = new(edit)
	return &s
}

// fold applies changes, in order, to the sorted list old, and returns the
// new sorted list without sharing old's array. It costs O(len(old) +
// len(ch)) (times log len(old) for what was gained), and a sort when
// something was gained.
func fold[P comparable](old []netip.Prefix, ch []change[P]) []netip.Prefix {
	// The last change of each prefix decides. Most peers change one or
	// two prefixes at a time, so a map is made only for many.
	var final map[netip.Prefix]bool
	if len(ch) > 16 {
		final = make(map[netip.Prefix]bool, len(ch))
		for _, c := range ch {
			final[c.prefix] = c.gained
		}
	}
	last := func(p netip.Prefix) (gained, changed bool) {
		if final != nil {
			gained, changed = final[p]
			return gained, changed
		}
		for i := len(ch) - 1; i >= 0; i-- {
			if ch[i].prefix == p {
				return ch[i].gained, true
			}
		}
		return false, false
	}
	out := make([]netip.Prefix, 0, len(old)+len(ch))
	for _, p := range old {
		if gained, changed := last(p); gained || !changed {
			out = append(out, p)
		}
	}
	kept := len(out)
	for i, c := range ch {
		if gained, _ := last(c.prefix); !gained {
			continue
		}
		if _, inOld := slices.BinarySearchFunc(old, c.prefix, comparePrefixes); inOld {
			continue
		}
		// Once, however often it was gained: at its last change.
		if final != nil {
			if _, done := final[c.prefix]; !done {
				continue
			}
			delete(final, c.prefix)
		} else if slices.ContainsFunc(ch[i+1:], func(d change[P]) bool { return d.prefix == c.prefix }) {
			continue
		}
		out = append(out, c.prefix)
	}
	if len(out) > kept {
		slices.SortFunc(out, comparePrefixes)
	}
	return slices.Clip(out)
}

// comparePrefixes orders IPv4 first, then longer prefixes first, then by
// address: the order `wg show` prints.
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

// Table is a Snapshot behind an atomic pointer, with a lock for writers:
// the table for one owner that changes it now and then. The zero value
// is an empty table ready to use. Lookup, Load and Prefixes take no lock;
// Update, Insert, Remove and RemovePeer serialise among themselves.
type Table[P comparable] struct {
	mu   sync.Mutex // serialises writers; readers never take it
	snap atomic.Pointer[Snapshot[P]]
}

// Load returns the current snapshot.
func (t *Table[P]) Load() *Snapshot[P] {
	if s := t.snap.Load(); s != nil {
		return s
	}
	return &Snapshot[P]{}
}

// Update runs change on a Txn of the current snapshot and publishes the
// result as one new snapshot.
func (t *Table[P]) Update(change func(*Txn[P])) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx := t.Load().Txn()
	change(tx)
	t.snap.Store(tx.Snapshot())
}

// Insert maps prefix to peer (see Txn.Insert).
func (t *Table[P]) Insert(prefix netip.Prefix, peer P) {
	t.Update(func(tx *Txn[P]) { tx.Insert(prefix, peer) })
}

// Remove deletes prefix, whichever peer it mapped to.
func (t *Table[P]) Remove(prefix netip.Prefix) {
	t.Update(func(tx *Txn[P]) { tx.Remove(prefix) })
}

// RemovePeer deletes every prefix that maps to peer.
func (t *Table[P]) RemovePeer(peer P) {
	t.Update(func(tx *Txn[P]) { tx.RemovePeer(peer) })
}

// Lookup is Snapshot.Lookup on the current snapshot.
func (t *Table[P]) Lookup(addr netip.Addr) (P, bool) { return t.Load().Lookup(addr) }

// Prefixes is Snapshot.Prefixes on the current snapshot.
func (t *Table[P]) Prefixes(peer P) []netip.Prefix { return t.Load().Prefixes(peer) }
