package stages

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/noise"
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
	keyMu sync.RWMutex
	index noise.IndexTable

	// peers is an immutable snapshot, replaced whole by each Batch, so
	// that the per-packet lookups (by ID, by address) take no lock.
	peers   atomic.Pointer[peerSet]
	peersMu sync.Mutex   // serialises configuration changes: peers, key, socket
	nextID  noise.PeerID // the last peer ID handed out; guarded by peersMu

	udpOut     *lockedWriter
	logLimited *rateLimitedLogger
	faults     *faultInjector // nil outside tests

	// Channels: owned here, not by the stages, so a restarted stage finds
	// them as they were.
	handshakes chan handshakeMsg
	wakeTimers chan struct{}
	wakes      wakeList // peers whose timers the timer actor must read again

	counters   *tunnelCounters
	hsCounters handshakeCounters
	hsPool     *handshakePool                        // the handshake workers' shared limits
	sup        atomic.Pointer[supervisor.Supervisor] // the stages' supervisor while Serve runs, for Health
	inline     inlinePath                            // the pipeline's inline path (inline.go)
	aqm        managedQueues                         // the managed queues (aqm.go), made once, outliving restarts
	// standAfter is how long reads must leave the kernel's queue
	// non-empty before a sequential loop drains it into the managed
	// queue (standing): Config.QueueTarget; tests may set it before Serve.
	standAfter time.Duration
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
	var dhCost time.Duration
	if c.HandshakeBudget == (HandshakeBudget{}) {
		c.HandshakeBudget, dhCost = CalibrateHandshakeBudget(runtime.GOMAXPROCS(0))
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
	t.aqm = newManagedQueues(&c)
	t.standAfter = c.QueueTarget
	t.counters = t.wireEngine()
	if dhCost > 0 {
		log.Debug("handshake budget calibrated", "x25519", dhCost, "initiations_per_s", int(c.HandshakeBudget.Initiations()),
			"burst", int(c.HandshakeBudget.Burst/noise.DHPerInitiation), "workers", c.HandshakeWorkers)
	}
	t.peers.Store(newPeerSet())
	err = t.Configure(func(b *Batch) error {
		for _, pc := range c.Peers {
			if err := b.AddPeer(pc); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
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

// wakePeer asks the timer actor to read p's deadline again; p's session
// calls it when an event makes something due sooner.
func (t *Tunnel) wakePeer(p *peer) {
	t.wakes.add(p)
	t.wake()
}

// wake wakes the timer actor.
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
		"handshake_workers", t.cfg.HandshakeWorkers, "handshakes_per_s", int(t.cfg.HandshakeBudget.Initiations()),
		"listen", t.udp.LocalAddr(), "peers", t.peers.Load().len(), "public_key", t.PublicKey())
	err := sup.Serve(ctx)
	t.log.Info("tunnel down", "err", err)
	return err
}
