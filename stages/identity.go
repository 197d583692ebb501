package stages

import (
	"fmt"

	"pipeguard/noise"
)

// identity is the tunnel's private key and what is derived from it: the
// Static the handshakes use, and the cookie checker that checks MAC1 and
// MAC2 of messages sent to us. It is immutable; the tunnel swaps it whole
// behind an atomic pointer, so the handshake actor reads it without a
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
func newIdentity(private noise.PrivateKey) (*identity, error) {
	if private.IsZero() {
		return nil, nil
	}
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

// PrivateKey returns the tunnel's private key (zero: none), for the UAPI
// "get" operation (`wg showconf` prints it; the socket is root's alone).
func (t *Tunnel) PrivateKey() noise.PrivateKey {
	if id := t.ident.Load(); id != nil {
		return id.private
	}
	return noise.PrivateKey{}
}
