package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"pipeguard/noise"
	"pipeguard/stages/allowedips"
	"pipeguard/supervisor"
	"pipeguard/supervisor/clock"
	"pipeguard/tunio"
)

// Tunnel is one WireGuard interface: its identity, its peers, and the
// dataplane engine between a TUN device and a UDP socket. Build one with
// New and run it with Serve; the zero value is not usable.
//
// Concurrency: Serve runs once. Stats, peer inspection and peer changes
// (AddPeer, RemovePeer) are safe to call from any goroutine while it runs.
type Tunnel struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	tun   tunio.Device
	udp   tunio.UDPConn

	ident atomic.Pointer[identity] // nil: no private key
	// keyMu orders key changes (write) against handshake work (read),
	// so that no session is derived from a key once it was replaced.
	keyMu   sync.RWMutex
	index   noise.IndexTable
	allowed allowedips.Table[*peer]

	// peers is an immutable snapshot, replaced whole on every change, so
	// that the per-packet lookup from a PeerID takes no lock.
	peers   atomic.Pointer[peerSet]
	peersMu sync.Mutex // serialises configuration changes: peers, key, socket
	nextID  noise.PeerID

	udpOut     *lockedWriter
	logLimited *rateLimitedLogger
	faults     *faultInjector // nil outside tests

	// Channels: owned here, not by the stages, so a restarted stage finds
	// them as they were.
	handshakes chan handshakeMsg
	wakeTimers chan struct{}

	counters   *tunnelCounters
	hsCounters handshakeCounters
	sup        atomic.Pointer[supervisor.Supervisor] // the stages' supervisor while Serve runs, for Health
	inline     inlinePath                            // the pipeline's inline path (inline.go)
}

// peerSet is the tunnel's peers at one moment.
type peerSet struct {
	byID  map[noise.PeerID]*peer
	byKey map[noise.PublicKey]*peer
	list  []*peer
}

// New builds a tunnel over tun and udp; it takes ownership of both and
// closes them when Serve returns. log receives the tunnel's events;
// clk is nil for the real clock (tests pass a fake one).
func New(cfg Config, tun tunio.Device, udp tunio.UDPConn, clk clock.Clock, log *slog.Logger) (*Tunnel, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if clk == nil {
		clk = clock.Real{}
	}
	id, err := newIdentity(c.PrivateKey)
	if err != nil {
		return nil, err
	}
	t := &Tunnel{
		cfg:        c,
		log:        log,
		clock:      clk,
		tun:        tun,
		udp:        udp,
		udpOut:     &lockedWriter{conn: udp},
		logLimited: newRateLimitedLogger(log, clk),
		handshakes: make(chan handshakeMsg, HandshakeQueueCapacity),
		wakeTimers: make(chan struct{}, 1),
	}
	t.ident.Store(id)
	if c.FwMark != 0 {
		if err := t.setFwMarkLocked(c.FwMark); err != nil {
			return nil, err
		}
	}
	t.counters = t.wireEngine()
	t.peers.Store(&peerSet{byID: map[noise.PeerID]*peer{}, byKey: map[noise.PublicKey]*peer{}})
	for _, pc := range c.Peers {
		if err := t.AddPeer(pc); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ErrPeerExists is returned by AddPeer for a public key already configured.
var ErrPeerExists = errors.New("stages: peer already configured")

// AddPeer adds a peer. Its AllowedIPs take prefixes away from peers that
// had them, as in WireGuard. A public key that is a low-order point (the
// all-zero key among them) is taken, as the kernel takes it, with one
// warning: no handshake with such a peer can complete, so none is
// attempted, and initiations that claim its key are refused (both
// counted under DropLowOrderKey).
func (t *Tunnel) AddPeer(pc PeerConfig) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	old := t.peers.Load()
	if _, ok := old.byKey[pc.PublicKey]; ok {
		return fmt.Errorf("%w: %s", ErrPeerExists, pc.PublicKey)
	}
	t.nextID++
	id := t.nextID
	hs, err := noise.NewHandshake(t.ident.Load().staticOf(), pc.PublicKey, pc.PresharedKey, id)
	if err != nil {
		return fmt.Errorf("%w: peer %s: %v", ErrConfig, pc.PublicKey, err)
	}
	if hs.LowOrder() {
		// Accepted, as the kernel accepts it (a `wg set` script that works
		// there works here), but said once: the peer will never connect.
		t.log.Warn("peer added with a low-order public key: no handshake with it can complete, and none is attempted", "public_key", pc.PublicKey)
	}
	p := newPeer(pc, hs, &noise.Session{})
	p.id = id
	p.session.Wake = t.wake
	for _, pfx := range pc.AllowedIPs {
		t.allowed.Insert(pfx, p)
	}
	ns := &peerSet{byID: make(map[noise.PeerID]*peer, len(old.byID)+1), byKey: make(map[noise.PublicKey]*peer, len(old.byKey)+1)}
	for k, v := range old.byID {
		ns.byID[k] = v
	}
	for k, v := range old.byKey {
		ns.byKey[k] = v
	}
	ns.byID[id], ns.byKey[pc.PublicKey] = p, p
	ns.list = append(append(make([]*peer, 0, len(old.list)+1), old.list...), p)
	t.peers.Store(ns)
	if pc.PersistentKeepalive > 0 {
		p.session.SetPersistentKeepalive(pc.PersistentKeepalive, t.clock.Now())
	}
	return nil
}

// RemovePeer removes the peer with public key pk: its routes, its
// sessions and its waiting packets. It reports whether the peer existed.
func (t *Tunnel) RemovePeer(pk noise.PublicKey) bool {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	p, ok := t.peers.Load().byKey[pk]
	if ok {
		t.removePeerLocked(p)
	}
	return ok
}

// removePeerLocked removes p; peersMu is held.
func (t *Tunnel) removePeerLocked(p *peer) {
	old := t.peers.Load()
	ns := &peerSet{byID: make(map[noise.PeerID]*peer, len(old.byID)), byKey: make(map[noise.PublicKey]*peer, len(old.byKey))}
	for k, v := range old.byID {
		if v != p {
			ns.byID[k] = v
		}
	}
	for k, v := range old.byKey {
		if v != p {
			ns.byKey[k] = v
		}
	}
	for _, v := range old.list {
		if v != p {
			ns.list = append(ns.list, v)
		}
	}
	t.peers.Store(ns)
	t.allowed.RemovePeer(p)
	t.stopPeer(p)
	p.dropStaged()
}

// keypairByIndex finds the session keypair and peer for a receiver index.
func (t *Tunnel) keypairByIndex(idx uint32) (*noise.Keypair, *peer, bool) {
	e, ok := t.index.Lookup(idx)
	if !ok || e.Keypair == nil {
		return nil, nil, false
	}
	p, ok := t.peers.Load().byID[e.Peer]
	if !ok {
		return nil, nil, false
	}
	return e.Keypair, p, true
}

// peerByHandshake is the lookup ConsumeInitiation needs.
func (t *Tunnel) handshakeByKey(pk noise.PublicKey) *noise.Handshake {
	if p, ok := t.peers.Load().byKey[pk]; ok {
		return p.hs
	}
	return nil
}

func (t *Tunnel) peerByID(id noise.PeerID) (*peer, bool) {
	p, ok := t.peers.Load().byID[id]
	return p, ok
}

// forgetKeypairs frees the indices of keypairs a session let go of, so
// messages to them are dropped as unknown.
func (t *Tunnel) forgetKeypairs(d noise.Dropped) {
	for _, kp := range d {
		if kp != nil {
			t.index.Delete(kp.LocalIndex)
		}
	}
}

// wake asks the timer actor to look at the peers' deadlines again; a
// session calls it when an event makes something due sooner.
func (t *Tunnel) wake() {
	select {
	case t.wakeTimers <- struct{}{}:
	default:
	}
}

// LocalAddr is the UDP address the tunnel listens on.
func (t *Tunnel) LocalAddr() netip.AddrPort { return t.udp.LocalAddr() }

// Serve runs the tunnel until ctx ends or a stage fails past its
// supervisor's patience. It closes the TUN device and UDP socket on
// return; a nil error means an orderly stop. When the TUN device's
// interface is deleted, it stops at once with an error that wraps
// tunio.ErrDeviceGone.
func (t *Tunnel) Serve(ctx context.Context) error {
	// The edge stages block in system calls that no context reaches;
	// closing the device and the socket is what unblocks them.
	var closeOnce sync.Once
	closeEdges := func() {
		closeOnce.Do(func() {
			t.tun.Close()
			t.udp.Close()
		})
	}
	sup := t.buildSupervisor(closeEdges)
	t.sup.Store(sup)
	stop := context.AfterFunc(ctx, closeEdges)
	defer stop()
	defer closeEdges()
	t.log.Info("tunnel up", "engine", t.cfg.Engine, "workers", t.cfg.Workers, "queue_capacity", t.cfg.QueueCapacity,
		"listen", t.udp.LocalAddr(), "peers", len(t.peers.Load().list), "public_key", t.PublicKey())
	err := sup.Serve(ctx)
	t.log.Info("tunnel down", "err", err)
	return err
}
