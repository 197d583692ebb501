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
	t := &Txn[P]{s: *s, edit: new(edit), last: map[P]chainEnd{}}
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
	last map[P]chainEnd
	// chain is scratch space for one peer's changes.
	chain []change[P]
}

// chainEnd is where a peer's changes end in the log, and how many.
type chainEnd struct{ last, n int32 }

type change[P comparable] struct {
	peer   P
	k      key
	v4     bool
	gained bool  // true: peer gained the prefix; false: lost it
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
	prev, had = insert(*root, entry[P]{k: keyOf(prefix), p: peer}, t.edit)
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
	prev = remove(*root, keyOf(prefix), t.edit)
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
	end, ok := t.last[peer]
	if !ok {
		return old
	}
	return fold(old, t.chainOf(end))
}

func (t *Txn[P]) note(peer P, prefix netip.Prefix, gained bool) {
	end, ok := t.last[peer]
	if !ok {
		end.last = -1
	}
	t.log = append(t.log, change[P]{peer: peer, k: keyOf(prefix), v4: prefix.Addr().Is4(), gained: gained, prev: end.last})
	t.last[peer] = chainEnd{last: int32(len(t.log) - 1), n: end.n + 1}
}

// chainOf returns the changes of the peer whose changes end at end, in
// order, in scratch space valid until the next call.
func (t *Txn[P]) chainOf(end chainEnd) []change[P] {
	t.chain = slices.Grow(t.chain[:0], int(end.n))[:end.n]
	for i, j := end.last, end.n-1; i >= 0; i, j = t.log[i].prev, j-1 {
		t.chain[j] = t.log[i]
	}
	return t.chain
}

// Snapshot returns the table with the changes made so far. The Txn may
// go on changing; nodes the returned Snapshot holds are frozen, and
// copied again when the Txn next changes them.
func (t *Txn[P]) Snapshot() *Snapshot[P] {
	if len(t.last) > 0 {
		owners := t.s.owners.Txn()
		for peer, end := range t.last {
			old, _ := owners.Get(peer)
			if l := fold(old, t.chainOf(end)); len(l) > 0 {
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

// fold applies changes ch, in order, to the sorted list old, and returns
// the new sorted list without sharing old's array. It sorts ch (scratch
// space) by prefix, keeping each prefix's changes in order, so that the
// last change of each decides, then merges: O(len(old) + k log k) for k
// changes, and no map.
func fold[P comparable](old []netip.Prefix, ch []change[P]) []netip.Prefix {
	slices.SortStableFunc(ch, func(a, b change[P]) int { return compareKeys(a.k, a.v4, b.k, b.v4) })
	out := make([]netip.Prefix, 0, len(old)+len(ch))
	i := 0
	for j := 0; j < len(ch); j++ {
		c := ch[j]
		if j+1 < len(ch) && ch[j+1].k == c.k && ch[j+1].v4 == c.v4 {
			continue // a later change of the same prefix decides
		}
		for ; i < len(old); i++ {
			ok := keyOf(old[i])
			cmp := compareKeys(ok, old[i].Addr().Is4(), c.k, c.v4)
			if cmp > 0 {
				break
			}
			if cmp < 0 {
				out = append(out, old[i])
			}
		}
		if c.gained {
			out = append(out, c.k.prefix(c.v4))
		}
	}
	out = append(out, old[i:]...)
	return slices.Clip(out)
}

// compareKeys orders prefixes, given as keys and families, as `wg show`
// prints them: IPv4 first, then longer prefixes first, then by address.
func compareKeys(a key, a4 bool, b key, b4 bool) int {
	switch {
	case a4 != b4:
		if a4 {
			return -1
		}
		return 1
	case a.bits != b.bits:
		return int(b.bits) - int(a.bits)
	case a.hi != b.hi:
		if a.hi < b.hi {
			return -1
		}
		return 1
	case a.lo != b.lo:
		if a.lo < b.lo {
			return -1
		}
		return 1
	}
	return 0
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
