package noise

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
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
// The zero value is an empty table ready to use. It is safe for concurrent
// use: Lookup, on the per-packet path, takes only a read lock and does not
// allocate.
type IndexTable struct {
	mu      sync.RWMutex          // guards entries
	entries map[uint32]IndexEntry // nil until the first insertion
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
	if t.entries == nil {
		t.entries = make(map[uint32]IndexEntry)
	}
	for {
		// With few entries among 2^32 a collision is rare; retrying under
		// the lock keeps the check and the insertion atomic.
		i := randIndex()
		if _, used := t.entries[i]; !used {
			t.entries[i] = e
			return i
		}
	}
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
	e, ok := t.entries[index]
	if !ok {
		return false
	}
	e.Keypair = kp
	t.entries[index] = e
	return true
}

// Delete frees index. Deleting an absent index does nothing.
func (t *IndexTable) Delete(index uint32) {
	t.mu.Lock()
	delete(t.entries, index)
	t.mu.Unlock()
}

// Lookup returns the entry for index.
func (t *IndexTable) Lookup(index uint32) (IndexEntry, bool) {
	t.mu.RLock()
	e, ok := t.entries[index]
	t.mu.RUnlock()
	return e, ok
}

// Len returns the number of indices in use.
func (t *IndexTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries)
}
