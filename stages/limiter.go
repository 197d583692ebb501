package stages

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"pipeguard/supervisor/clock"
)

// sourceLimiter is a token bucket per source IP for handshake messages
// under load, with wireguard-go's figures: 20 a second, bursts of 5. A
// sender that proved its address with a cookie still cannot make us do
// more than 20 Curve25519 handshakes a second for it.
//
// The zero value is ready. Not safe for concurrent use: the handshake
// actor owns it.
type sourceLimiter struct {
	buckets   map[netip.Addr]bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

const (
	limiterRate  = 20 // messages per second per source
	limiterBurst = 5
	// limiterMaxSources bounds the table; past it, idle entries go first
	// and, if all are active, the table starts over rather than grow.
	limiterMaxSources = 1 << 16
)

func (l *sourceLimiter) allow(ip netip.Addr, now time.Time) bool {
	if l.buckets == nil {
		l.buckets = make(map[netip.Addr]bucket)
	}
	if now.Sub(l.lastSweep) > time.Second || len(l.buckets) >= limiterMaxSources {
		l.sweep(now)
	}
	b, ok := l.buckets[ip]
	if !ok {
		b = bucket{tokens: limiterBurst, last: now}
	}
	b.tokens = min(limiterBurst, b.tokens+now.Sub(b.last).Seconds()*limiterRate)
	b.last = now
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	l.buckets[ip] = b
	return allowed
}

// sweep forgets sources whose buckets have refilled: they are back to the
// state a new entry starts in.
func (l *sourceLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for ip, b := range l.buckets {
		if now.Sub(b.last) > time.Second*limiterBurst/limiterRate {
			delete(l.buckets, ip)
		}
	}
	if len(l.buckets) >= limiterMaxSources {
		clear(l.buckets)
	}
}

// workBudget is a token bucket of Curve25519 work: each message the
// handshake workers go on to consume takes its X25519 operations from it
// (HandshakeBudget), and so does each initiation the timer actor sends
// that no waiting packet asks for (one token each, initiationRate). The
// per-source limit cannot bound the total against many sources, and the
// queue's depth cannot see a flood that the workers just keep up with, a
// core or two of Curve25519 work; an empty budget puts the handshake
// workers under load, so cookies are required, and what has one waits
// for the budget.
//
// Make one with its rate and burst; used counts from zero, a full
// bucket. Not safe for concurrent use: its owner locks it.
type workBudget struct {
	rate, burst float64   // tokens a second, and at most at once
	used        float64   // tokens taken and not yet refilled, 0..burst
	last        time.Time // when used was last brought up to date
}

func newWorkBudget(b HandshakeBudget) workBudget {
	return workBudget{rate: b.PerSecond, burst: b.Burst}
}

// The budget of initiations the timer actor sends that no waiting packet
// asks for (keepalives and retries to peers that are away), one token
// each: enough for 60,000 peers that rekey every two minutes, and a few
// percent of a core (two X25519 operations each).
const (
	initiationRate  = 500
	initiationBurst = 128
)

// refill brings the budget up to now: what the time since the last call
// gave back.
func (b *workBudget) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.used = max(0, b.used-d.Seconds()*b.rate)
	}
	b.last = now
}

// empty reports whether less than cost may be spent at now.
func (b *workBudget) empty(now time.Time, cost float64) bool {
	b.refill(now)
	return b.used+cost > b.burst
}

// take takes cost tokens if there are that many.
func (b *workBudget) take(now time.Time, cost float64) bool {
	if b.empty(now, cost) {
		return false
	}
	b.used += cost
	return true
}

// rateLimitedLogger logs a message at most once a second per message text,
// for events that can repeat per packet: a failing socket must not flood
// the journal. Safe for concurrent use.
type rateLimitedLogger struct {
	log   *slog.Logger
	clock clock.Clock

	mu   sync.Mutex // guards last
	last map[string]time.Time
}

func newRateLimitedLogger(log *slog.Logger, c clock.Clock) *rateLimitedLogger {
	return &rateLimitedLogger{log: log, clock: c, last: map[string]time.Time{}}
}

func (r *rateLimitedLogger) ok(msg string) bool {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, seen := r.last[msg]; seen && now.Sub(t) < time.Second {
		return false
	}
	r.last[msg] = now
	return true
}

func (r *rateLimitedLogger) warn(msg string, args ...any) {
	if r.ok(msg) {
		r.log.Warn(msg, args...)
	}
}

func (r *rateLimitedLogger) debug(msg string, args ...any) {
	if r.log.Enabled(context.Background(), slog.LevelDebug) && r.ok(msg) {
		r.log.Debug(msg, args...)
	}
}
