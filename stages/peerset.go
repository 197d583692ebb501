package stages

import (
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"math"
	"time"

	"pipeguard/noise"
	"pipeguard/stages/allowedips"
	"pipeguard/stages/internal/pmap"
	"pipeguard/stages/internal/pvec"
)

// peerSet is the tunnel's configuration of peers at one moment: who they
// are and what they route. It is immutable, published whole behind
// Tunnel.peers by a Batch, so that the data path (a lookup by receiver
// index's peer ID, by address, by public key for a handshake) takes no
// lock, and a reader (`wg show`) sees one request's changes all or not
// at all.
//
// Costs, as the number of peers N grows:
//   - by ID (the data path, once per packet): two loads, O(1);
//   - by public key (handshakes, the control API): O(log64 N) nodes;
//   - by address: O(address bytes) nodes (allowedips);
//   - listing in the order peers were added: O(N) for all;
//   - a Batch of k changes: O(k), plus one copy of each node or chunk it
//     touches and of the ID directory (N/256 pointers).
//
// Per peer it holds a 16-byte slot by ID, a 48-byte leaf by key with its
// share of nodes, the peer's conf (48 bytes), and its routes in
// allowedips; the peer itself is the rest of its cost (see peer).
type peerSet struct {
	byID    pvec.Vec[peerRef]
	byKey   pmap.Map[noise.PublicKey, *peer]
	allowed *allowedips.Snapshot[*peer]
}

// peerRef is a peer and its configuration as of this set.
type peerRef struct {
	p    *peer
	conf *peerConf // nil: no pre-shared key, no keepalive (most peers)
}

// config returns r's configuration.
func (r peerRef) config() peerConf {
	if r.conf == nil {
		return peerConf{}
	}
	return *r.conf
}

// peerConf is what `wg show` reports of a peer's configuration. It is
// immutable and belongs to one peerSet, so that a reader sees a request's
// changes all or not at all; the running objects (the handshake's key,
// the session's keepalive) get the same values once the set is published.
type peerConf struct {
	psk       noise.PresharedKey
	keepalive time.Duration
}

// confOf returns a peerRef's conf for psk and keepalive: nil for neither,
// so that most peers cost no conf of their own.
func confOf(psk noise.PresharedKey, keepalive time.Duration) *peerConf {
	if psk.IsZero() && keepalive == 0 {
		return nil
	}
	return &peerConf{psk: psk, keepalive: keepalive}
}

func newPeerSet() *peerSet {
	seed := maphash.MakeSeed()
	return &peerSet{
		byKey:   pmap.New[noise.PublicKey, *peer](func(k noise.PublicKey) uint64 { return maphash.Bytes(seed, k[:]) }),
		allowed: &allowedips.Snapshot[*peer]{},
	}
}

// len is the number of peers.
func (s *peerSet) len() int { return s.byID.Len() }

// key returns the peer with public key pk, or nil.
func (s *peerSet) key(pk noise.PublicKey) *peer {
	p, _ := s.byKey.Get(pk)
	return p
}

// id returns the peer with ID id.
func (s *peerSet) id(id noise.PeerID) (*peer, bool) {
	r, ok := s.byID.Get(uint32(id))
	return r.p, ok
}

// all yields the peers in the order they were added.
func (s *peerSet) all() iter.Seq[peerRef] {
	return func(yield func(peerRef) bool) {
		for _, r := range s.byID.All() {
			if !yield(r) {
				return
			}
		}
	}
}

// ErrPeerExists is returned by AddPeer for a public key already configured.
var ErrPeerExists = errors.New("stages: peer already configured")

// ErrTooManyPeers is returned by AddPeer once a tunnel has handed out
// every peer ID (2^32 - 1 peers added over its life; IDs are not reused,
// so that a stale receiver index can never name a newer peer).
var ErrTooManyPeers = errors.New("stages: peer IDs exhausted")

// Batch is one change to the tunnel's peers, made inside Configure: peers
// added, removed and changed, published as one new peerSet when the
// function returns nil, dropped whole when it returns an error. What the
// change does to running peers (stopping removed ones, a new pre-shared
// key, a keepalive turned on) happens after the set is published, in the
// order the Batch asked for it.
//
// A Batch is used by one goroutine, inside Configure only.
type Batch struct {
	t       *Tunnel
	byID    *pvec.Txn[peerRef]
	byKey   *pmap.Txn[noise.PublicKey, *peer]
	allowed *allowedips.Txn[*peer]
	nextID  noise.PeerID
	now     time.Time
	after   []func() // run in order once the set is published
}

// Configure runs change on a Batch of the tunnel's peers and publishes the
// result as one change, unless change returns an error: then nothing
// changes, and Configure returns that error. It serialises with every
// other configuration change (peers, private key, socket); readers of the
// tunnel's state, and the data path, never wait for it. Each operation of
// the Batch costs O(1) or O(log N) in the number of peers N, so a request
// of k changes costs O(k).
func (t *Tunnel) Configure(change func(*Batch) error) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	return t.configureLocked(change)
}

// configureLocked is Configure with peersMu held.
func (t *Tunnel) configureLocked(change func(*Batch) error) error {
	old := t.peers.Load()
	b := &Batch{t: t, byID: old.byID.Txn(), byKey: old.byKey.Txn(), allowed: old.allowed.Txn(),
		nextID: t.nextID, now: t.clock.Now()}
	if err := change(b); err != nil {
		return err
	}
	t.peers.Store(&peerSet{byID: b.byID.Vec(), byKey: b.byKey.Map(), allowed: b.allowed.Snapshot()})
	t.nextID = b.nextID
	for _, f := range b.after {
		f()
	}
	return nil
}

// Has reports whether a peer with public key pk exists, as the batch
// stands.
func (b *Batch) Has(pk noise.PublicKey) bool {
	_, ok := b.byKey.Get(pk)
	return ok
}

// Len is the number of peers as the batch stands.
func (b *Batch) Len() int { return b.byID.Len() }

// PublicKeys yields the public keys of the peers as the batch started, in
// the order they were added.
func (b *Batch) PublicKeys() iter.Seq[noise.PublicKey] {
	return func(yield func(noise.PublicKey) bool) {
		for r := range b.t.peers.Load().all() {
			if !yield(r.p.publicKey) {
				return
			}
		}
	}
}

// AddPeer adds a peer. Its AllowedIPs take prefixes away from peers that
// had them, as in WireGuard. It does no Curve25519 work: the static-static
// Diffie-Hellman of the peer is computed at its first handshake.
//
// A public key that is a low-order point (the all-zero key among them) is
// taken, as the kernel takes it, with one warning once the batch is
// applied: no handshake with such a peer can complete, so none is
// attempted, and initiations that claim its key are refused (both
// counted under DropLowOrderKey).
func (b *Batch) AddPeer(pc PeerConfig) error {
	if b.Has(pc.PublicKey) {
		return fmt.Errorf("%w: %s", ErrPeerExists, pc.PublicKey)
	}
	if b.nextID == math.MaxUint32 {
		return ErrTooManyPeers
	}
	id := b.nextID + 1
	hs, err := noise.NewHandshake(b.t.ident.Load().staticOf(), pc.PublicKey, pc.PresharedKey, id)
	if err != nil {
		return fmt.Errorf("%w: peer %s: %v", ErrConfig, pc.PublicKey, err)
	}
	b.nextID = id
	p := newPeer(pc, hs, &noise.Session{})
	p.id = id
	t := b.t
	p.session.Wake = func() { t.wakePeer(p) }
	for _, pfx := range pc.AllowedIPs {
		b.allowed.Insert(pfx, p)
	}
	b.byID.Set(uint32(id), peerRef{p: p, conf: confOf(pc.PresharedKey, pc.PersistentKeepalive)})
	b.byKey.Set(pc.PublicKey, p)
	if ka := pc.PersistentKeepalive; ka > 0 {
		b.after = append(b.after, func() { p.session.SetPersistentKeepalive(ka, b.now) })
	}
	if hs.LowOrder() {
		// Taken, as the kernel takes it (a `wg set` script that works
		// there works here), but said once: the peer will never connect.
		pk := pc.PublicKey
		b.after = append(b.after, func() {
			t.log.Warn("peer added with a low-order public key: no handshake with it can complete, and none is attempted", "public_key", pk)
		})
	}
	return nil
}

// RemovePeer removes the peer with public key pk: its routes, its
// sessions and its waiting packets. It reports whether the peer existed.
func (b *Batch) RemovePeer(pk noise.PublicKey) bool {
	p, ok := b.byKey.Get(pk)
	if !ok {
		return false
	}
	b.byKey.Delete(pk)
	b.byID.Set(uint32(p.id), peerRef{})
	b.allowed.RemovePeer(p)
	b.after = append(b.after, func() {
		b.t.stopPeer(p)
		p.dropStaged()
		b.t.wakePeer(p) // so that the timer actor lets go of it
	})
	return true
}

// UpdatePeer changes the peer with public key pk in place. Its sessions
// survive: a new pre-shared key applies from the next handshake, as in
// WireGuard, and a new endpoint from the next datagram.
func (b *Batch) UpdatePeer(pk noise.PublicKey, u PeerUpdate) error {
	p, ok := b.byKey.Get(pk)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoPeer, pk)
	}
	ref, _ := b.byID.Get(uint32(p.id))
	conf := ref.config()
	if u.PresharedKey != nil {
		psk := *u.PresharedKey
		conf.psk = psk
		b.after = append(b.after, func() { p.hs.SetPresharedKey(psk) })
	}
	if u.Endpoint != nil {
		ep := *u.Endpoint
		b.after = append(b.after, func() { p.setEndpoint(ep) })
	}
	if u.PersistentKeepalive != nil {
		// Turning it on sends a keepalive at once (the session raises it
		// and wakes the timer actor), as wireguard-go's UAPI does.
		ka := *u.PersistentKeepalive
		conf.keepalive = ka
		b.after = append(b.after, func() { p.session.SetPersistentKeepalive(ka, b.now) })
	}
	if conf != ref.config() {
		b.byID.Set(uint32(p.id), peerRef{p: p, conf: confOf(conf.psk, conf.keepalive)})
	}
	if u.ReplaceAllowedIPs {
		b.allowed.RemovePeer(p)
	}
	for _, pfx := range u.RemoveAllowedIPs {
		if owner, ok := b.allowed.Get(pfx); ok && owner == p {
			b.allowed.Remove(pfx)
		}
	}
	for _, pfx := range u.AddAllowedIPs {
		b.allowed.Insert(pfx, p)
	}
	return nil
}

// Peer returns the status of the peer with public key pk as the batch
// stands.
func (b *Batch) Peer(pk noise.PublicKey) (PeerStatus, bool) {
	p, ok := b.byKey.Get(pk)
	if !ok {
		return PeerStatus{}, false
	}
	ref, _ := b.byID.Get(uint32(p.id))
	return status(ref, b.allowed.Prefixes(p), b.now), true
}

// AddPeer adds a peer (see Batch.AddPeer).
func (t *Tunnel) AddPeer(pc PeerConfig) error {
	return t.Configure(func(b *Batch) error { return b.AddPeer(pc) })
}

// RemovePeer removes the peer with public key pk (see Batch.RemovePeer).
// It reports whether the peer existed.
func (t *Tunnel) RemovePeer(pk noise.PublicKey) bool {
	var ok bool
	t.Configure(func(b *Batch) error { ok = b.RemovePeer(pk); return nil })
	return ok
}

// UpdatePeer changes the peer with public key pk (see Batch.UpdatePeer).
func (t *Tunnel) UpdatePeer(pk noise.PublicKey, u PeerUpdate) error {
	return t.Configure(func(b *Batch) error { return b.UpdatePeer(pk, u) })
}

// keypairByIndex finds the session keypair and peer for a receiver index.
func (t *Tunnel) keypairByIndex(idx uint32) (*noise.Keypair, *peer, bool) {
	e, ok := t.index.Lookup(idx)
	if !ok || e.Keypair == nil {
		return nil, nil, false
	}
	p, ok := t.peers.Load().id(e.Peer)
	if !ok {
		return nil, nil, false
	}
	return e.Keypair, p, true
}

// handshakeByKey is the lookup ConsumeInitiation needs.
func (t *Tunnel) handshakeByKey(pk noise.PublicKey) *noise.Handshake {
	if p := t.peers.Load().key(pk); p != nil {
		return p.hs
	}
	return nil
}

func (t *Tunnel) peerByID(id noise.PeerID) (*peer, bool) {
	return t.peers.Load().id(id)
}

// routes is the cryptokey routing table as of now.
func (t *Tunnel) routes() *allowedips.Snapshot[*peer] { return t.peers.Load().allowed }
