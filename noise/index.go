package noise

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// PeerID is the caller's handle for a peer: the index table hands it back
// on lookup so that the pipeline finds the peer without a second map. It
// is opaque to this package.
type PeerID uint32

// IndexEntry is what one of our receiver indices stands for. Handshake is
// always the owning peer's handshake state (its cookie generator answers
// cookie replies to either kind of index); Keypair is set once the index
// belongs to a session, and is nil while a handshake is in progress.
type IndexEntry struct {
	Peer      PeerID
	Handshake *Handshake
	Keypair   *Keypair
}

// IndexTable maps our 32-bit receiver indices (the "sender" field of the
// handshake messages we send, the "receiver" field of messages sent to us)
// to handshakes in progress and to session keypairs.
//
// Indices are random, as the whitepaper recommends, so that they reveal
// nothing about how many sessions exist; 0 is never allocated, so a zero
// index means "none".
//
// The table is an open-addressing hash table (linear probing, the index
// itself the hash: it is random) of pointers to immutable entries, behind
// an atomic pointer, kept at most half full, tombstones included. Lookup,
// on the per-packet path, takes no lock, writes nothing shared and does
// not allocate: an expected two or three slot loads whatever the number
// of entries. Writers (handshakes, rare) take a mutex; a change replaces
// one slot's entry, and growth (or shrinking, or shedding tombstones)
// builds a new table and publishes it whole, O(1) amortised per write. A
// reader sees each index as it was before a write or after it. An entry
// costs about 56 bytes: its 32, and two to four 8-byte slots.
//
// The zero value is an empty table ready to use. It is safe for
// concurrent use.
type IndexTable struct {
	tab atomic.Pointer[indexTab] // nil until the first insertion

	mu   sync.Mutex // serialises writers; guards live and used
	live int        // entries
	used int        // entries and tombstones: slots no probe stops at
}

// indexTab is one generation of the table. Its slots change only under
// IndexTable.mu, and never once a newer generation is published.
type indexTab struct {
	slots []atomic.Pointer[indexSlot] // a power of two of them
	mask  uint32
	tomb  *indexSlot // marks a deleted entry: index 0 matches no lookup
}

// indexSlot is one entry, immutable once stored.
type indexSlot struct {
	index uint32
	e     IndexEntry
}

// minIndexSlots is the smallest table: a few sessions' worth.
const minIndexSlots = 16

func newIndexTab(size int) *indexTab {
	return &indexTab{slots: make([]atomic.Pointer[indexSlot], size), mask: uint32(size - 1), tomb: &indexSlot{}}
}

// find returns the slot holding index, or -1.
func (t *indexTab) find(index uint32) int {
	for i := index & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i].Load()
		if s == nil {
			return -1
		}
		if s.index == index {
			return int(i)
		}
	}
}

// randIndex returns a random non-zero index.
func randIndex() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:]) // never fails since Go 1.24
		if i := binary.LittleEndian.Uint32(b[:]); i != 0 {
			return i
		}
	}
}

// insert stores e under a fresh random index and returns that index.
func (t *IndexTable) insert(e IndexEntry) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	if tab == nil || 2*(t.used+1) > len(tab.slots) {
		tab = t.rehashLocked(tab)
	}
	for {
		// With few entries among 2^32 a collision is rare; retrying under
		// the lock keeps the check and the insertion atomic.
		i := randIndex()
		if tab.find(i) >= 0 {
			continue
		}
		j := i & tab.mask
		for {
			s := tab.slots[j].Load()
			if s == nil {
				t.used++
				break
			}
			if s == tab.tomb {
				break // reused: used stays
			}
			j = (j + 1) & tab.mask
		}
		tab.slots[j].Store(&indexSlot{index: i, e: e})
		t.live++
		return i
	}
}

// rehashLocked publishes a new generation with room for the live
// entries and as many again before the next, without tombstones, and
// returns it.
func (t *IndexTable) rehashLocked(old *indexTab) *indexTab {
	size := minIndexSlots
	for size < 4*(t.live+1) {
		size *= 2
	}
	tab := newIndexTab(size)
	if old != nil {
		for i := range old.slots {
			s := old.slots[i].Load()
			if s == nil || s == old.tomb {
				continue
			}
			j := s.index & tab.mask
			for tab.slots[j].Load() != nil {
				j = (j + 1) & tab.mask
			}
			tab.slots[j].Store(s)
		}
	}
	t.used = t.live
	t.tab.Store(tab)
	return tab
}

// NewHandshakeIndex allocates a fresh index for a handshake in progress.
func (t *IndexTable) NewHandshakeIndex(h *Handshake) uint32 {
	return t.insert(IndexEntry{Peer: h.peer, Handshake: h})
}

// SwapKeypair turns the handshake index into the index of the session kp
// that the handshake produced, keeping the peer. It reports false if the
// index no longer exists (the peer was removed meanwhile).
func (t *IndexTable) SwapKeypair(index uint32, kp *Keypair) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	if tab == nil || index == 0 {
		return false
	}
	i := tab.find(index)
	if i < 0 {
		return false
	}
	e := tab.slots[i].Load().e
	e.Keypair = kp
	tab.slots[i].Store(&indexSlot{index: index, e: e})
	return true
}

// Delete frees index. Deleting an absent index does nothing.
func (t *IndexTable) Delete(index uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	if tab == nil || index == 0 {
		return
	}
	if i := tab.find(index); i >= 0 {
		tab.slots[i].Store(tab.tomb)
		t.live--
	}
}

// Lookup returns the entry for index. It takes no lock and does not
// allocate.
func (t *IndexTable) Lookup(index uint32) (IndexEntry, bool) {
	tab := t.tab.Load()
	if tab == nil || index == 0 {
		return IndexEntry{}, false
	}
	for i := index & tab.mask; ; i = (i + 1) & tab.mask {
		s := tab.slots[i].Load()
		if s == nil {
			return IndexEntry{}, false
		}
		if s.index == index {
			return s.e, true
		}
	}
}

// Len returns the number of indices in use.
func (t *IndexTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}
