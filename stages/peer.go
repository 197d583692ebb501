package stages

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/noise"
	"pipeguard/wire"
)

// peer is the tunnel's state for one remote peer. It is shared by every
// stage through a pointer; each field says who writes it.
type peer struct {
	id        noise.PeerID
	publicKey noise.PublicKey

	// hs is the handshake state; the handshake workers and the timer
	// actor use it (it locks inside).
	hs *noise.Handshake

	// session holds the keypairs and the protocol timers, and the
	// persistent keepalive interval (the one copy of it, so a change
	// through the control API is seen by everything); its send path is
	// lock-free, see noise.Session.
	session *noise.Session

	// endpoint is where datagrams for the peer go, and the local address
	// they leave from (endpoint.go). Set from config, and by the ordered
	// checks and the handshake workers (roaming) from the latest
	// authenticated datagram; read by routing and the control senders;
	// its local address forgotten by the senders and ForgetLocalAddr when
	// the host no longer has it.
	endpoint atomic.Pointer[endpoint]

	// Transfer counters of transport messages (data and keepalives): rx
	// written by the ordered checks (acceptStep), tx by routing
	// (routeStep; and the timer actor for keepalives and staged packets).
	rxBytes, txBytes atomic.Uint64
	// Transfer counters of handshake messages: initiations and responses
	// received from the peer and sent to it, written by the handshake
	// actor and (initiations sent) the timer actor. `wg show transfer`
	// reports the sum of both kinds, as the kernel does.
	rxHandshake, txHandshake atomic.Uint64

	// hsMu orders the actors' handshake steps against RemovePeer: keys
	// are installed, and initiations created, only under it and only
	// while removed is false; RemovePeer sets removed and erases the keys
	// under it. Held briefly, never while waiting for a stage.
	hsMu    sync.Mutex
	removed bool // guarded by hsMu

	// handshakes counts completed handshakes (as initiator or responder);
	// written by the handshake workers.
	handshakes atomic.Uint64

	// toldTooBig is set once the peer was logged for sending inner
	// packets above 1280 bytes (udprecv).
	toldTooBig atomic.Bool

	// silence is whether the peer was logged as not answering (timer
	// actor) and has not answered since (handshake workers).
	silence silence

	// rxReport and txReport throttle the data path's reports to session.
	rxReport, txReport reportThrottle

	// timerIdx is the peer's position in the timer actor's queue, which
	// only that actor reads or writes (timerq.go); timerWoken is true
	// while the peer is on the tunnel's wake list.
	timerIdx   int32
	timerWoken atomic.Bool

	// staged holds outbound packets waiting for a session. staging is true
	// while it is non-empty, so the data path tests one atomic in the common
	// case and queues behind staged packets, never ahead of them.
	staging  atomic.Bool
	stagedMu sync.Mutex // guards staged
	staged   []wire.Packet
}

func newPeer(cfg PeerConfig, hs *noise.Handshake, session *noise.Session) *peer {
	p := &peer{
		publicKey: cfg.PublicKey,
		hs:        hs,
		session:   session,
	}
	p.setEndpoint(cfg.Endpoint)
	return p
}

// peerName is a peer as logs name it: the first 8 characters of its
// public key, made only when a record is written (slog.LogValuer), so
// that a peer keeps no string for it and a disabled log line costs
// nothing.
type peerName peer

// LogValue is the peer's short name.
func (n *peerName) LogValue() slog.Value { return slog.StringValue(n.publicKey.String()[:8]) }

// name is p for a log record's "peer" attribute.
func (p *peer) name() *peerName { return (*peerName)(p) }

// stageUnlessReady queues a copy of pkt behind any packets already
// waiting, unless the queue is empty and ready() reports that a session can
// send now: then it returns queued == false and the caller sends pkt
// itself. ready is asked under the queue's lock, because the flush that
// follows a new session takes the same lock: either the packet is queued
// before the flush, or it sees the session and the empty queue after it.
// full reports a packet dropped because the queue was full.
func (p *peer) stageUnlessReady(pkt *wire.Packet, ready func() bool) (queued, full bool) {
	p.stagedMu.Lock()
	defer p.stagedMu.Unlock()
	if len(p.staged) == 0 && ready() {
		return false, false
	}
	if len(p.staged) >= StagedPerPeer {
		return false, true
	}
	if p.staged == nil {
		// Allocated once per peer, on its first handshake, never per packet.
		p.staged = make([]wire.Packet, 0, StagedPerPeer)
	}
	p.staged = append(p.staged, *pkt)
	p.staging.Store(true)
	return true, false
}

// takeStaged hands the waiting packets, in order, to send, which runs with
// the queue locked so that the data path cannot overtake them, and empties
// the queue. It returns how many it handed.
func (p *peer) takeStaged(send func(pkts []wire.Packet)) int {
	p.stagedMu.Lock()
	defer p.stagedMu.Unlock()
	n := len(p.staged)
	if n > 0 {
		send(p.staged)
	}
	p.staged = p.staged[:0]
	p.staging.Store(false)
	return n
}

// dropStaged empties the queue, returning how many packets it dropped.
func (p *peer) dropStaged() int {
	return p.takeStaged(func([]wire.Packet) {})
}

// eventReportInterval is how often, at most, the data path reports traffic
// to a peer's session (whose event methods take a lock). The protocol's
// timers count in seconds, so a millisecond of slack changes nothing, and
// it keeps a lock off the per-packet path.
const eventReportInterval = time.Millisecond

// reportThrottle decides when one direction of the data path reports to
// the session. Only one goroutine (the ordered stage of that direction)
// uses it; the fields are atomic so a restarted stage on another goroutine
// reads them safely.
type reportThrottle struct {
	last     atomic.Int64 // Unix nanoseconds of the last report
	lastData atomic.Bool  // whether the last report included data
}

// due reports whether to report now, and records that the caller will.
// A report is due after the interval, or at once when data follows a
// keepalive-only report, since data arms timers that keepalives do not.
func (r *reportThrottle) due(now time.Time, data bool) bool {
	ns := now.UnixNano()
	if ns-r.last.Load() < int64(eventReportInterval) && (!data || r.lastData.Load()) {
		return false
	}
	r.last.Store(ns)
	r.lastData.Store(data)
	return true
}
