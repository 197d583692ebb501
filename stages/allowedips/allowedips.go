// Package allowedips is WireGuard's cryptokey routing table: prefixes of
// IPv4 and IPv6 addresses mapped to peers, looked up by longest-prefix
// match. Outbound, the destination picks the peer; inbound, a packet is
// accepted only if its source maps back to the peer that sent it.
//
// The table is built for a hot path that reads far more than it writes:
// lookups are lock-free and allocation-free and read an immutable snapshot;
// writers copy the snapshot, change the copy and publish it. One map per
// prefix length in use makes a lookup cost one hash probe per distinct
// length (typically two or three), whatever the number of peers.
package allowedips

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Table maps prefixes to peers of type P (a comparable handle, usually a
// pointer). The zero value is an empty table ready to use. Lookup is safe
// for concurrent use with everything; Insert, Remove and RemovePeer
// serialise among themselves.
type Table[P comparable] struct {
	mu   sync.Mutex // serialises writers; readers never take it
	snap atomic.Pointer[snapshot[P]]
}

type snapshot[P comparable] struct {
	v4 family[uint32, P]
	v6 family[[16]byte, P]
}

// family holds the prefixes of one address family: for every prefix length
// in use, longest first, a map from the masked address to the peer.
type family[K comparable, P comparable] struct {
	lengths []int           // distinct prefix lengths in use, descending
	byLen   map[int]map[K]P // prefix length -> masked address -> peer
}

func (f *family[K, P]) clone() family[K, P] {
	c := family[K, P]{lengths: slices.Clone(f.lengths), byLen: make(map[int]map[K]P, len(f.byLen))}
	for l, m := range f.byLen {
		mc := make(map[K]P, len(m))
		for k, v := range m {
			mc[k] = v
		}
		c.byLen[l] = mc
	}
	return c
}

func (f *family[K, P]) insert(bits int, key K, peer P) {
	m, ok := f.byLen[bits]
	if !ok {
		m = make(map[K]P)
		f.byLen[bits] = m
		f.lengths = append(f.lengths, bits)
		slices.SortFunc(f.lengths, func(a, b int) int { return b - a })
	}
	m[key] = peer
}

func (f *family[K, P]) remove(bits int, key K) {
	m, ok := f.byLen[bits]
	if !ok {
		return
	}
	delete(m, key)
	if len(m) == 0 {
		f.dropLength(bits)
	}
}

func (f *family[K, P]) removePeer(peer P) {
	for bits, m := range f.byLen {
		for k, p := range m {
			if p == peer {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			f.dropLength(bits)
		}
	}
}

func (f *family[K, P]) dropLength(bits int) {
	delete(f.byLen, bits)
	f.lengths = slices.DeleteFunc(f.lengths, func(l int) bool { return l == bits })
}

func v4Key(a netip.Addr, bits int) uint32 {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if bits == 0 {
		return 0
	}
	return v &^ (1<<(32-bits) - 1)
}

func v6Key(a netip.Addr, bits int) [16]byte {
	b := a.As16()
	for i := range b {
		switch rem := bits - 8*i; {
		case rem >= 8:
		case rem <= 0:
			b[i] = 0
		default:
			b[i] &= ^byte(0xff >> rem)
		}
	}
	return b
}

func (t *Table[P]) load() *snapshot[P] {
	if s := t.snap.Load(); s != nil {
		return s
	}
	return &snapshot[P]{}
}

// update runs change on a private copy of the current snapshot and
// publishes the copy. Copying costs O(entries) per write, which is what
// keeps every read lock-free; writes come from configuration, not traffic.
func (t *Table[P]) update(change func(s *snapshot[P])) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	s := &snapshot[P]{v4: old.v4.clone(), v6: old.v6.clone()}
	change(s)
	t.snap.Store(s)
}

// Insert maps prefix to peer, replacing the peer it mapped to before: in
// WireGuard a prefix belongs to at most one peer. The prefix is masked, so
// 10.0.0.1/24 means 10.0.0.0/24. An invalid prefix is ignored.
func (t *Table[P]) Insert(prefix netip.Prefix, peer P) {
	if !prefix.IsValid() {
		return
	}
	prefix = prefix.Masked()
	a, bits := prefix.Addr(), prefix.Bits()
	t.update(func(s *snapshot[P]) {
		if a.Is4() {
			s.v4.insert(bits, v4Key(a, bits), peer)
		} else {
			s.v6.insert(bits, v6Key(a, bits), peer)
		}
	})
}

// Remove deletes prefix from the table, whichever peer it mapped to.
func (t *Table[P]) Remove(prefix netip.Prefix) {
	if !prefix.IsValid() {
		return
	}
	prefix = prefix.Masked()
	a, bits := prefix.Addr(), prefix.Bits()
	t.update(func(s *snapshot[P]) {
		if a.Is4() {
			s.v4.remove(bits, v4Key(a, bits))
		} else {
			s.v6.remove(bits, v6Key(a, bits))
		}
	})
}

// RemovePeer deletes every prefix that maps to peer.
func (t *Table[P]) RemovePeer(peer P) {
	t.update(func(s *snapshot[P]) {
		s.v4.removePeer(peer)
		s.v6.removePeer(peer)
	})
}

// Lookup returns the peer of the longest prefix containing addr. An
// IPv4-mapped IPv6 address is looked up as IPv6, as on the wire.
func (t *Table[P]) Lookup(addr netip.Addr) (peer P, ok bool) {
	s := t.snap.Load()
	if s == nil {
		return peer, false
	}
	if addr.Is4() {
		for _, bits := range s.v4.lengths {
			if p, ok := s.v4.byLen[bits][v4Key(addr, bits)]; ok {
				return p, true
			}
		}
		return peer, false
	}
	if !addr.IsValid() {
		return peer, false
	}
	for _, bits := range s.v6.lengths {
		if p, ok := s.v6.byLen[bits][v6Key(addr, bits)]; ok {
			return p, true
		}
	}
	return peer, false
}

// Prefixes returns the prefixes that map to peer, IPv4 first, each family
// from the longest prefix down; for `wg show` and for installing routes.
func (t *Table[P]) Prefixes(peer P) []netip.Prefix {
	s := t.load()
	var out []netip.Prefix
	for _, bits := range s.v4.lengths {
		for k, p := range s.v4.byLen[bits] {
			if p == peer {
				out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}), bits))
			}
		}
	}
	for _, bits := range s.v6.lengths {
		for k, p := range s.v6.byLen[bits] {
			if p == peer {
				out = append(out, netip.PrefixFrom(netip.AddrFrom16(k), bits))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b netip.Prefix) int {
		if a.Addr().Is4() != b.Addr().Is4() {
			if a.Addr().Is4() {
				return -1
			}
			return 1
		}
		if a.Bits() != b.Bits() {
			return b.Bits() - a.Bits()
		}
		return a.Addr().Compare(b.Addr())
	})
	return out
}
