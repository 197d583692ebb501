package stages

import (
	"fmt"

	"pipeguard/noise"
)

// identity is the tunnel's private key and what is derived from it: the
// Static the handshakes use, and the cookie checker that checks MAC1 and
// MAC2 of messages sent to us. It is immutable; the tunnel swaps it whole
// behind an atomic pointer, so the handshake workers read it without a
// lock. A nil identity means the tunnel has no private key: it then
// takes part in no handshake, so no session exists and no data flows,
// while peers can be configured (as in wireguard-go, whose interfaces
// start empty and get their key from `wg set`).
type identity struct {
	private noise.PrivateKey
	static  *noise.Static
	cookies *noise.CookieChecker
}

// newIdentity derives the identity of private; a zero key is no identity.
// The key is clamped first, as the kernel and wireguard-go do when a key
// is set: the identity keeps the clamped key, and `wg show private-key`
// prints it.
func newIdentity(private noise.PrivateKey) (*identity, error) {
	if private.IsZero() {
		return nil, nil
	}
	private = private.Clamped()
	s, err := noise.NewStatic(private)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrConfig, err)
	}
	return &identity{private: private, static: s, cookies: noise.NewCookieChecker(s)}, nil
}

// staticOf is id's Static, or nil for no identity.
func (id *identity) staticOf() *noise.Static {
	if id == nil {
		return nil
	}
	return id.static
}

// PublicKey is the tunnel's public key, or the zero key while it has no
// private key.
func (t *Tunnel) PublicKey() noise.PublicKey {
	if id := t.ident.Load(); id != nil {
		return id.static.PublicKey()
	}
	return noise.PublicKey{}
}

// PrivateKey returns the tunnel's private key, clamped (zero: none), for the UAPI
// "get" operation (`wg showconf` prints it; the socket is root's alone).
func (t *Tunnel) PrivateKey() noise.PrivateKey {
	if id := t.ident.Load(); id != nil {
		return id.private
	}
	return noise.PrivateKey{}
}

// SetPrivateKey sets, changes or (with the zero key) removes the tunnel's
// private key, as `wg set IFACE private-key FILE` does; the key is
// clamped (see newIdentity), and setting the key it has, clamped or not,
// changes nothing. On a change, everything derived from the old
// key goes: every peer's keypairs and their indices, handshakes in
// progress, the precomputed static-static DH, and the cookie checker
// with its MAC1 key; and a peer whose public key is the new public key
// is removed, as wireguard-go's Device.SetPrivateKey does. Packets
// waiting for a peer stay and get a handshake with the new key at once,
// as do peers with a persistent keepalive; other peers handshake when
// traffic asks for it.
//
// It is safe to call while the tunnel runs: the data path reads the
// identity through an atomic pointer and takes no lock; the handshake
// actor waits for the change to finish.
func (t *Tunnel) SetPrivateKey(k noise.PrivateKey) error {
	id, err := newIdentity(k)
	if err != nil {
		return err
	}
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	if old := t.ident.Load(); (old == nil && id == nil) || (old != nil && id != nil && old.private.Equal(id.private)) {
		return nil
	}
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	if id != nil {
		if p := t.peers.Load().key(id.static.PublicKey()); p != nil {
			t.log.Info("peer removed: its public key is the tunnel's new one", "peer", p.name())
			t.configureLocked(func(b *Batch) error { b.RemovePeer(p.publicKey); return nil })
		}
	}
	t.ident.Store(id)
	now := t.clock.Now()
	set := t.peers.Load()
	for r := range set.all() {
		p := r.p
		p.hs.SetLocal(id.staticOf(), &t.index)
		t.forgetKeypairs(p.session.Reset(now, p.staging.Load()))
	}
	t.log.Info("private key changed", "public_key", t.PublicKey(), "peers", set.len())
	return nil
}
