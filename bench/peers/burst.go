package peers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"pipeguard/bench/core"
	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// The handshake burst: K peers of the tunnel under test, played by the
// harness with package noise, each with its own key, start a handshake
// within one second, spread evenly over it, from several source
// addresses (so that the tunnel's per-source limits apply as they would
// to real clients). Each behaves as a real initiator does (wireguard-go,
// the kernel): without a response it sends a new initiation after
// Rekey-Timeout (5 s) and a jitter of up to a third of a second; a cookie
// reply it keeps, and its next initiation carries MAC2 with the cookie,
// but it sends nothing sooner for it. So a peer that needed a cookie
// round waited at least 5 s.

// Settings of the burst.
const (
	// DefaultBurst and QuickBurst are K, the peers of the burst.
	DefaultBurst = 1000
	QuickBurst   = 100
	// BurstWindow is the time the peers' first initiations spread over.
	BurstWindow = time.Second
	// burstSources is how many source addresses the peers send from, a
	// socket each: the tunnel limits each address's handshakes under
	// load, and a thousand real clients come from hundreds of addresses
	// (behind NAT, several share one).
	burstSources = 64
	// burstDeadline bounds the wait for every session: three retries.
	burstDeadline = 20 * time.Second
	// burstRetryJitter is the most a retry waits past Rekey-Timeout, as
	// wireguard-go and the kernel add (a third of a second).
	burstRetryJitter = 333 * time.Millisecond
	// burstPoll is how often the retrier looks for peers due a retry.
	burstPoll = 10 * time.Millisecond
)

// BurstResult is what one burst measured.
type BurstResult struct {
	Peers int `json:"peers"` // K
	// Sessions is how many peers got a session (a response that
	// completed their handshake) before the deadline.
	Sessions int `json:"sessions"`
	// AllSeconds is from the first initiation until the last peer's
	// response arrived, when every peer got one; 0 otherwise.
	AllSeconds    float64 `json:"all_seconds"`
	MedianSeconds float64 `json:"median_seconds"` // over the peers with a session
	// CookieRounds is how many peers were sent a cookie reply (and so
	// waited for a retry with MAC2); Retried how many sent more than one
	// initiation.
	CookieRounds int `json:"cookie_rounds"`
	Retried      int `json:"retried"`
}

// burstPeer is one peer of the burst.
type burstPeer struct {
	static *noise.Static
	hs     *noise.Handshake
	conn   tunio.UDPConn // the socket (source address) it sends from

	mu       sync.Mutex // guards the fields below
	msg      []byte     // its latest initiation, marshalled
	sender   uint32     // that initiation's sender index
	sentAt   time.Time
	retryAt  time.Time
	inits    int
	cookie   bool      // was sent a cookie reply
	response []byte    // the response to its latest initiation, once it came
	respAt   time.Time // when it came
}

// burst is one run of the burst against the tunnel at tunnel, whose
// public key is remote.
type burst struct {
	tunnel netip.AddrPort
	remote noise.PublicKey
	conns  []tunio.UDPConn
	peers  []*burstPeer
	index  noise.IndexTable // every peer's handshake indices
	// retry is how long a peer waits for a response before it sends a
	// new initiation: noise.RekeyTimeout, shorter in tests.
	retry    time.Duration
	deadline time.Duration
}

// newBurst makes k peers of the tunnel, with fresh keys, spread over
// conns; Keys lists their public keys for the tunnel's configuration.
func newBurst(k int, tunnel netip.AddrPort, remote noise.PublicKey, conns []tunio.UDPConn) (*burst, error) {
	if len(conns) == 0 || k < 1 {
		return nil, fmt.Errorf("%w: a burst of %d peers over %d sockets", core.ErrNetns, k, len(conns))
	}
	b := &burst{tunnel: tunnel, remote: remote, conns: conns, retry: noise.RekeyTimeout, deadline: burstDeadline}
	for i := range k {
		key, err := noise.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		st, err := noise.NewStatic(key)
		if err != nil {
			return nil, err
		}
		hs, err := noise.NewHandshake(st, remote, noise.PresharedKey{}, noise.PeerID(i))
		if err != nil {
			return nil, err
		}
		b.peers = append(b.peers, &burstPeer{static: st, hs: hs, conn: conns[i%len(conns)]})
	}
	return b, nil
}

// keys are the public keys of the burst's peers.
func (b *burst) keys() []noise.PublicKey {
	out := make([]noise.PublicKey, len(b.peers))
	for i, p := range b.peers {
		out[i] = p.static.PublicKey()
	}
	return out
}

// initiateLocked makes p's next initiation at now and arms its retry.
func (b *burst) initiateLocked(p *burstPeer, now time.Time) error {
	var msg wire.Initiation
	if err := p.hs.CreateInitiation(now, &b.index, &msg); err != nil {
		return err
	}
	var m [wire.InitiationSize]byte
	msg.Marshal(&m)
	p.msg, p.sender = m[:], msg.Sender
	p.inits++
	p.retryAt = time.Time{} // armed when sent
	return nil
}

// sendLocked sends p's latest initiation at now.
func (b *burst) sendLocked(p *burstPeer, now time.Time) error {
	p.sentAt = now
	p.retryAt = now.Add(b.retry + rand.N(burstRetryJitter))
	return p.conn.WriteBatch([]tunio.Datagram{{Buf: p.msg, N: len(p.msg), Addr: b.tunnel}})
}

// run plays the burst: every peer's first initiation is made before the
// window opens (so that the harness's own Curve25519 work does not
// compete with the tunnel's), sent at its place in the window, retried
// as a real initiator would, until every peer has a response or the
// deadline passes; then each response is checked. It closes the sockets
// before it returns, which stops its readers.
func (b *burst) run(ctx context.Context) (BurstResult, error) {
	res := BurstResult{Peers: len(b.peers)}
	prep := time.Now()
	for _, p := range b.peers {
		if err := b.initiateLocked(p, prep); err != nil {
			return res, err
		}
	}
	var readers sync.WaitGroup
	readErr := make(chan error, len(b.conns))
	for _, c := range b.conns {
		readers.Go(func() {
			if err := b.read(c); err != nil {
				readErr <- err
			}
		})
	}
	defer func() {
		for _, c := range b.conns {
			c.Close()
		}
		readers.Wait()
	}()
	start := time.Now()
	step := BurstWindow / time.Duration(len(b.peers))
	for i, p := range b.peers {
		if err := sleepUntil(ctx, start.Add(time.Duration(i)*step)); err != nil {
			return res, err
		}
		p.mu.Lock()
		err := b.sendLocked(p, time.Now())
		p.mu.Unlock()
		if err != nil {
			return res, err
		}
	}
	for !b.done() {
		now := time.Now()
		if now.Sub(start) > b.deadline {
			break
		}
		select {
		case err := <-readErr:
			return res, err
		default:
		}
		for _, p := range b.peers {
			p.mu.Lock()
			if p.response == nil && !p.retryAt.IsZero() && !now.Before(p.retryAt) {
				err := b.initiateLocked(p, now)
				if err == nil {
					err = b.sendLocked(p, now)
				}
				if err != nil {
					p.mu.Unlock()
					return res, err
				}
			}
			p.mu.Unlock()
		}
		if err := sleepUntil(ctx, now.Add(burstPoll)); err != nil {
			return res, err
		}
	}
	return b.result(start), nil
}

// done reports whether every peer has a response.
func (b *burst) done() bool {
	for _, p := range b.peers {
		p.mu.Lock()
		got := p.response != nil
		p.mu.Unlock()
		if !got {
			return false
		}
	}
	return true
}

// result checks each response against its peer's handshake and
// summarises.
func (b *burst) result(start time.Time) BurstResult {
	res := BurstResult{Peers: len(b.peers)}
	var took []float64
	for _, p := range b.peers {
		p.mu.Lock()
		if p.cookie {
			res.CookieRounds++
		}
		if p.inits > 1 {
			res.Retried++
		}
		if p.response != nil {
			if _, _, err := p.static.ConsumeResponse(p.response, p.respAt, &b.index); err == nil {
				took = append(took, p.respAt.Sub(start).Seconds())
			}
		}
		p.mu.Unlock()
	}
	res.Sessions = len(took)
	if len(took) > 0 {
		res.MedianSeconds = core.Median(took)
		if len(took) == len(b.peers) {
			res.AllSeconds = slices.Max(took)
		}
	}
	return res
}

// read takes what the tunnel sends to one socket until it is closed:
// responses are kept for their peer (if they answer its latest
// initiation), cookie replies go to the peer's handshake.
func (b *burst) read(c tunio.UDPConn) error {
	msgs := make([]tunio.Datagram, c.BatchSize())
	for i := range msgs {
		msgs[i].Buf = make([]byte, 256)
	}
	for {
		n, err := c.ReadBatch(msgs)
		if err != nil {
			if tunio.IsClosed(err) {
				return nil
			}
			return err
		}
		now := time.Now()
		for _, m := range msgs[:n] {
			b.handle(m.Buf[:m.N], now)
		}
	}
}

// handle is one datagram from the tunnel.
func (b *burst) handle(d []byte, now time.Time) {
	typ, err := wire.PeekType(d)
	if err != nil {
		return
	}
	switch typ {
	case wire.TypeResponse:
		var r wire.Response
		if r.Unmarshal(d) != nil {
			return
		}
		receiver := r.Receiver
		e, ok := b.index.Lookup(receiver)
		if !ok || int(e.Peer) >= len(b.peers) {
			return
		}
		p := b.peers[e.Peer]
		p.mu.Lock()
		if receiver == p.sender && p.response == nil {
			p.response, p.respAt = slices.Clone(d), now
		}
		p.mu.Unlock()
	case wire.TypeCookieReply:
		h, err := noise.ConsumeCookieReply(d, now, &b.index)
		if err != nil || int(h.Peer()) >= len(b.peers) {
			return
		}
		p := b.peers[h.Peer()]
		p.mu.Lock()
		p.cookie = true
		p.mu.Unlock()
	}
}

// sleepUntil waits until t, or fails when ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
