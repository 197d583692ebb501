package stages

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"time"

	"pipeguard/noise"
)

// The control API: what `wg show`, `wg set` and a configuration reload
// need from a running tunnel. It works on peers by public key and changes
// them in place, so that a change to one setting of a peer never costs it
// its sessions, its queued packets or its counters. None of it is on the
// data path; every change is a Batch (peerset.go) and takes peersMu,
// which only configuration takes, and no reader waits for it.

// ErrNoPeer is returned for a public key that names no configured peer.
var ErrNoPeer = errors.New("stages: no such peer")

// PeerStatus is one peer as `wg show` reports it.
type PeerStatus struct {
	PublicKey           noise.PublicKey
	PresharedKey        noise.PresharedKey // zero when not set
	Endpoint            netip.AddrPort     // zero when not known yet
	AllowedIPs          []netip.Prefix     // masked, IPv4 first, longest first; shared: do not change its elements
	PersistentKeepalive time.Duration      // 0: off
	LastHandshake       time.Time          // zero: never
	// SilentSince is when the peer's unanswered handshake initiations
	// began, once they have gone unanswered for PeerSilentAfter; zero
	// while the peer answers (or nothing was sent to it).
	SilentSince time.Time
	// RxBytes and TxBytes count the UDP payload of every datagram
	// received from the peer (and authenticated) and sent to it, as the
	// kernel and wireguard-go count them for `wg show transfer`:
	// handshake initiations and responses, keepalives and data. Cookie
	// replies are not counted, in either direction, as the kernel does
	// not count them: one we send answers a sender we have not
	// authenticated, and one we receive carries no proof of its sender.
	RxBytes, TxBytes uint64
	// RxHandshakeBytes and TxHandshakeBytes are the handshake messages'
	// part of RxBytes and TxBytes, for the metrics' split.
	RxHandshakeBytes, TxHandshakeBytes uint64
	// Handshakes counts the handshakes completed with the peer since it
	// was added.
	Handshakes uint64
}

// Peers returns the status of every peer, in the order they were added:
// O(peers) memory; a reader of many (metrics, status lines, `wg show`)
// streams them with AllPeers instead.
func (t *Tunnel) Peers() []PeerStatus {
	out := make([]PeerStatus, 0, t.peers.Load().len())
	for st := range t.AllPeers() {
		out = append(out, st)
	}
	return out
}

// AllPeers yields the status of every peer, in the order they were added,
// from one snapshot of the configuration: a change made meanwhile (by a
// Batch) shows all or not at all. Counters, endpoints and handshake times
// are read live, as the peer yields. It holds no lock, so a reader that
// takes its time (streaming `wg show` to a slow client) delays no one.
func (t *Tunnel) AllPeers() iter.Seq[PeerStatus] {
	set := t.peers.Load()
	return func(yield func(PeerStatus) bool) {
		now := t.clock.Now()
		for r := range set.all() {
			if !yield(status(r, set.allowed.Prefixes(r.p), now)) {
				return
			}
		}
	}
}

// Peer returns the status of the peer with public key pk.
func (t *Tunnel) Peer(pk noise.PublicKey) (PeerStatus, bool) {
	set := t.peers.Load()
	p := set.key(pk)
	if p == nil {
		return PeerStatus{}, false
	}
	r, _ := set.byID.Get(uint32(p.id))
	return status(r, set.allowed.Prefixes(p), t.clock.Now()), true
}

// status is r's status as of now.
func status(r peerRef, allowed []netip.Prefix, now time.Time) PeerStatus {
	c := r.config()
	p := r.p
	st := PeerStatus{
		PublicKey:           p.publicKey,
		PresharedKey:        c.psk,
		Endpoint:            p.Endpoint(),
		AllowedIPs:          allowed,
		PersistentKeepalive: c.keepalive,
		LastHandshake:       p.session.LastHandshake(),
		SilentSince:         silentSince(p, now),
		Handshakes:          p.handshakes.Load(),
	}
	st.RxHandshakeBytes, st.TxHandshakeBytes = p.rxHandshake.Load(), p.txHandshake.Load()
	st.RxBytes = p.rxBytes.Load() + st.RxHandshakeBytes
	st.TxBytes = p.txBytes.Load() + st.TxHandshakeBytes
	return st
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

// SyncResult says what SyncPeers changed, by public key. Updated peers
// changed in the configuration since the last one applied; Restored
// peers had been changed at run time (`wg set`, an endpoint they roamed
// to) and were set back to the configuration.
type SyncResult struct {
	Added, Updated, Restored, Removed []noise.PublicKey
}

// SyncPeers makes the tunnel's peers those of want, as `wg syncconf`
// does with a file: the file wins, whole. Peers not in want are removed,
// new ones added, and every setting of a kept peer that differs from
// want is set to want's value: also a change made at run time with `wg
// set`, and an endpoint the peer roamed to when want names an endpoint
// (one the file leaves out stays as it is). A peer whose settings all
// equal want's is not touched, so its sessions and traffic carry on; one
// that is changed keeps its sessions too.
//
// A prefix that want lists for two peers goes to the later one, as at
// start-up (see Overlaps), and the earlier peer is compared without it,
// so that such a prefix does not move back and forth on every reload.
//
// The caller passes the configuration it applied last as prev (nil for
// none); it only sorts the result into Updated and Restored.
//
// A want that the tunnel would refuse (a peer listed twice) is refused
// before anything changes. A public key that is a low-order point is
// taken, as AddPeer takes it.
func (t *Tunnel) SyncPeers(prev, want []PeerConfig) (SyncResult, error) {
	var res SyncResult
	// Everything that can be refused is refused before anything
	// changes: a reload applies whole or not at all.
	seen := make(map[noise.PublicKey]bool, len(want))
	for _, pc := range want {
		if seen[pc.PublicKey] {
			return res, fmt.Errorf("%w: peer %s listed twice", ErrConfig, pc.PublicKey)
		}
		seen[pc.PublicKey] = true
	}
	// Compared as the table will hold them: a prefix listed for two
	// peers belongs to the later one, and is no change for the other.
	want = effective(want)
	before := make(map[noise.PublicKey]PeerConfig, len(prev))
	for _, pc := range effective(prev) {
		before[pc.PublicKey] = pc
	}
	// One batch: the tunnel moves from the old configuration to the new
	// one in a single step, which readers and the data path see whole.
	err := t.Configure(func(b *Batch) error {
		var remove []noise.PublicKey
		for pk := range b.PublicKeys() {
			if !seen[pk] {
				remove = append(remove, pk)
			}
		}
		for _, pk := range remove {
			if b.RemovePeer(pk) {
				res.Removed = append(res.Removed, pk)
			}
		}
		for _, pc := range want {
			cur, ok := b.Peer(pc.PublicKey)
			if !ok {
				if err := b.AddPeer(pc); err != nil {
					return err
				}
				res.Added = append(res.Added, pc.PublicKey)
				continue
			}
			u, changed := peerDiff(cur, pc)
			if !changed {
				continue
			}
			if err := b.UpdatePeer(pc.PublicKey, u); err != nil {
				return err
			}
			if old, ok := before[pc.PublicKey]; ok && samePeerConfig(old, pc) {
				res.Restored = append(res.Restored, pc.PublicKey)
			} else {
				res.Updated = append(res.Updated, pc.PublicKey)
			}
		}
		return nil
	})
	if err != nil {
		return SyncResult{}, err
	}
	return res, nil
}

// peerDiff returns the update that turns the peer cur into want, and
// whether there is anything to do.
func peerDiff(cur PeerStatus, want PeerConfig) (PeerUpdate, bool) {
	var u PeerUpdate
	changed := false
	if !cur.PresharedKey.Equal(want.PresharedKey) {
		psk := want.PresharedKey
		u.PresharedKey, changed = &psk, true
	}
	if want.Endpoint.IsValid() && want.Endpoint != cur.Endpoint {
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

// Overlap is a prefix that two peers of one configuration list. Only
// the later peer gets it, as with wg setconf, where each allowed_ip
// takes the prefix from whichever peer had it.
type Overlap struct {
	Prefix    netip.Prefix    // masked
	Lost, Won noise.PublicKey // the earlier peer, left without it; the later one
}

// Overlaps lists the prefixes that more than one peer of peers lists,
// for a warning: a peer silently left without a prefix its
// configuration names is a mistake worth a log line.
func Overlaps(peers []PeerConfig) []Overlap {
	var out []Overlap
	owner := map[netip.Prefix]noise.PublicKey{}
	for _, pc := range peers {
		for _, pfx := range pc.AllowedIPs {
			pfx = pfx.Masked()
			if prev, ok := owner[pfx]; ok && prev != pc.PublicKey {
				out = append(out, Overlap{Prefix: pfx, Lost: prev, Won: pc.PublicKey})
			}
			owner[pfx] = pc.PublicKey
		}
	}
	return out
}

// effective returns peers with each prefix kept by the last peer that
// lists it, masked and once: what the table holds after adding them in
// order. peers is not changed.
func effective(peers []PeerConfig) []PeerConfig {
	last := map[netip.Prefix]int{}
	for i, pc := range peers {
		for _, pfx := range pc.AllowedIPs {
			last[pfx.Masked()] = i
		}
	}
	out := make([]PeerConfig, len(peers))
	done := make(map[netip.Prefix]bool, len(last))
	for i, pc := range peers {
		out[i] = pc
		out[i].AllowedIPs = nil
		for _, pfx := range pc.AllowedIPs {
			if m := pfx.Masked(); last[m] == i && !done[m] {
				done[m] = true
				out[i].AllowedIPs = append(out[i].AllowedIPs, m)
			}
		}
	}
	return out
}

// samePeerConfig reports whether a and b configure a peer the same way.
func samePeerConfig(a, b PeerConfig) bool {
	return a.PublicKey == b.PublicKey && a.PresharedKey.Equal(b.PresharedKey) && a.Endpoint == b.Endpoint &&
		a.PersistentKeepalive == b.PersistentKeepalive && samePrefixes(a.AllowedIPs, b.AllowedIPs)
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
