package stages

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"pipeguard/noise"
)

// The control API: what `wg show`, `wg set` and a configuration reload
// need from a running tunnel. It works on peers by public key and changes
// them in place, so that a change to one setting of a peer never costs it
// its sessions, its queued packets or its counters. None of it is on the
// data path; every change takes peersMu, which only configuration takes.

// ErrNoPeer is returned for a public key that names no configured peer.
var ErrNoPeer = errors.New("stages: no such peer")

// PeerStatus is one peer as `wg show` reports it.
type PeerStatus struct {
	PublicKey           noise.PublicKey
	PresharedKey        noise.PresharedKey // zero when not set
	Endpoint            netip.AddrPort     // zero when not known yet
	AllowedIPs          []netip.Prefix     // masked, IPv4 first, longest first
	PersistentKeepalive time.Duration      // 0: off
	LastHandshake       time.Time          // zero: never
	RxBytes, TxBytes    uint64             // datagram bytes, as wireguard-go counts them
}

// Handshakes returns how many handshakes each peer has completed with the
// tunnel, as initiator or responder, since it was added: the optional
// metrics.HandshakeCounter capability.
func (t *Tunnel) Handshakes() map[noise.PublicKey]uint64 {
	list := t.peers.Load().list
	m := make(map[noise.PublicKey]uint64, len(list))
	for _, p := range list {
		m[p.publicKey] = p.handshakes.Load()
	}
	return m
}

// Peers returns the status of every peer, in the order they were added.
func (t *Tunnel) Peers() []PeerStatus {
	list := t.peers.Load().list
	out := make([]PeerStatus, 0, len(list))
	for _, p := range list {
		out = append(out, t.status(p))
	}
	return out
}

// Peer returns the status of the peer with public key pk.
func (t *Tunnel) Peer(pk noise.PublicKey) (PeerStatus, bool) {
	p, ok := t.peers.Load().byKey[pk]
	if !ok {
		return PeerStatus{}, false
	}
	return t.status(p), true
}

func (t *Tunnel) status(p *peer) PeerStatus {
	return PeerStatus{
		PublicKey:           p.publicKey,
		PresharedKey:        p.hs.PresharedKey(),
		Endpoint:            p.Endpoint(),
		AllowedIPs:          t.allowed.Prefixes(p),
		PersistentKeepalive: p.session.PersistentKeepalive(),
		LastHandshake:       p.session.LastHandshake(),
		RxBytes:             p.rxBytes.Load(),
		TxBytes:             p.txBytes.Load(),
	}
}

// PeerUpdate is a change to one peer. Nil pointers and empty lists leave
// the setting as it is. Allowed IPs change in the order the UAPI "set"
// operation implies: first ReplaceAllowedIPs clears them, then
// RemoveAllowedIPs and AddAllowedIPs apply.
type PeerUpdate struct {
	PresharedKey        *noise.PresharedKey
	Endpoint            *netip.AddrPort
	PersistentKeepalive *time.Duration
	ReplaceAllowedIPs   bool
	AddAllowedIPs       []netip.Prefix
	// RemoveAllowedIPs removes prefixes only where they map to this peer:
	// a prefix that moved to another peer stays with it.
	RemoveAllowedIPs []netip.Prefix
}

// UpdatePeer changes the peer with public key pk in place. Its sessions
// survive: a new pre-shared key applies from the next handshake, as in
// WireGuard, and a new endpoint from the next datagram.
func (t *Tunnel) UpdatePeer(pk noise.PublicKey, u PeerUpdate) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	p, ok := t.peers.Load().byKey[pk]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoPeer, pk)
	}
	t.updateLocked(p, u)
	return nil
}

// updateLocked applies u to p; peersMu is held.
func (t *Tunnel) updateLocked(p *peer, u PeerUpdate) {
	if u.PresharedKey != nil {
		p.hs.SetPresharedKey(*u.PresharedKey)
	}
	if u.Endpoint != nil {
		if u.Endpoint.IsValid() {
			ep := *u.Endpoint
			p.endpoint.Store(&ep)
		} else {
			p.endpoint.Store(nil)
		}
	}
	if u.PersistentKeepalive != nil {
		// Turning it on sends a keepalive at once (the session raises it
		// and wakes the timer actor), as wireguard-go's UAPI does.
		p.session.SetPersistentKeepalive(*u.PersistentKeepalive, t.clock.Now())
	}
	if u.ReplaceAllowedIPs {
		t.allowed.RemovePeer(p)
	}
	if len(u.RemoveAllowedIPs) > 0 {
		mine := t.allowed.Prefixes(p)
		for _, pfx := range u.RemoveAllowedIPs {
			if slices.Contains(mine, pfx.Masked()) {
				t.allowed.Remove(pfx)
			}
		}
	}
	for _, pfx := range u.AddAllowedIPs {
		t.allowed.Insert(pfx, p)
	}
}

// SyncResult says what SyncPeers changed, by public key.
type SyncResult struct {
	Added, Updated, Removed []noise.PublicKey
}

// SyncPeers makes the tunnel's peers those of want, as a configuration
// reload does: peers not in want are removed, new ones added, and those
// whose settings differ are updated in place. A peer whose settings are
// all equal is not touched at all, so its sessions and traffic carry on.
// An endpoint the peer roamed to is not a difference: the configured
// endpoint counts only if the configured value itself changed.
//
// The caller passes the configuration it applied last as prev (nil for
// none), which is how roaming is told apart from a changed setting.
func (t *Tunnel) SyncPeers(prev, want []PeerConfig) (SyncResult, error) {
	var res SyncResult
	seen := make(map[noise.PublicKey]bool, len(want))
	for _, pc := range want {
		if seen[pc.PublicKey] {
			return res, fmt.Errorf("%w: peer %s listed twice", ErrConfig, pc.PublicKey)
		}
		seen[pc.PublicKey] = true
	}
	before := make(map[noise.PublicKey]PeerConfig, len(prev))
	for _, pc := range prev {
		before[pc.PublicKey] = pc
	}
	for _, p := range t.peers.Load().list {
		if !seen[p.publicKey] && t.RemovePeer(p.publicKey) {
			res.Removed = append(res.Removed, p.publicKey)
		}
	}
	for _, pc := range want {
		cur, ok := t.Peer(pc.PublicKey)
		if !ok {
			if err := t.AddPeer(pc); err != nil {
				return res, err
			}
			res.Added = append(res.Added, pc.PublicKey)
			continue
		}
		u, changed := peerDiff(cur, before[pc.PublicKey], pc)
		if !changed {
			continue
		}
		if err := t.UpdatePeer(pc.PublicKey, u); err != nil {
			return res, err
		}
		res.Updated = append(res.Updated, pc.PublicKey)
	}
	return res, nil
}

// peerDiff returns the update that turns the peer cur (last configured as
// prev) into want, and whether there is anything to do.
func peerDiff(cur PeerStatus, prev, want PeerConfig) (PeerUpdate, bool) {
	var u PeerUpdate
	changed := false
	if !cur.PresharedKey.Equal(want.PresharedKey) {
		psk := want.PresharedKey
		u.PresharedKey, changed = &psk, true
	}
	// A configured endpoint that did not change in the file leaves the
	// roamed one alone; a new one in the file applies.
	if want.Endpoint != prev.Endpoint && want.Endpoint != cur.Endpoint && want.Endpoint.IsValid() {
		ep := want.Endpoint
		u.Endpoint, changed = &ep, true
	}
	if cur.PersistentKeepalive != want.PersistentKeepalive {
		ka := want.PersistentKeepalive
		u.PersistentKeepalive, changed = &ka, true
	}
	if !samePrefixes(cur.AllowedIPs, want.AllowedIPs) {
		u.ReplaceAllowedIPs, u.AddAllowedIPs, changed = true, want.AllowedIPs, true
	}
	return u, changed
}

// samePrefixes compares two prefix lists as sets of masked prefixes.
func samePrefixes(a, b []netip.Prefix) bool {
	norm := func(ps []netip.Prefix) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(ps))
		for _, p := range ps {
			out = append(out, p.Masked())
		}
		slices.SortFunc(out, func(x, y netip.Prefix) int {
			if c := x.Addr().Compare(y.Addr()); c != 0 {
				return c
			}
			return x.Bits() - y.Bits()
		})
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}
