// Package codel is the CoDel queue controller (RFC 8289, as Linux's
// include/net/codel_impl.h runs it): it watches how long packets have
// waited when they leave a queue (their sojourn time) and, once that has
// stayed above a target for a whole interval, drops (or marks) packets at
// a rate that grows with the square root of the drops so far, until the
// queue's delay falls below the target again. A queue that only fills in
// bursts and drains is never touched: what CoDel removes is a standing
// queue, the delay no packet needs.
//
// The controller holds no clock and no packets: the queue asks it about
// each packet at its head, with the time now and the packet's sojourn, and
// acts on the Verdict. Times are durations since any fixed epoch of a
// monotonic clock, so tests drive it with a fake one.
package codel

import (
	"math"
	"time"
)

// Params are a controller's settings.
type Params struct {
	// Target is the delay a queue may keep standing: once every packet
	// of an Interval has waited at least this long, the controller acts.
	Target time.Duration
	// Interval is how long the delay must stay above Target before the
	// first drop, and the unit of the drop rate: about the round trip of
	// the flows through the queue, the time a sender takes to hear of a
	// drop and slow down.
	Interval time.Duration
	// MTU is a queue's backlog in bytes at or below which nothing is
	// dropped: with one packet left, there is no standing queue to
	// remove, whatever that packet waited.
	MTU int
	// ECN marks ECN-capable packets (the Verdict Mark) instead of
	// dropping them.
	ECN bool
}

// Verdict is what to do with the packet at the head of the queue.
type Verdict uint8

// The verdicts.
const (
	Deliver Verdict = iota // send it on
	Drop                   // drop it and ask about the next one
	Mark                   // set CE on it and send it on
)

// Class is how the controller may act on a packet.
type Class uint8

// The classes.
const (
	// NotECT: a packet the controller may drop.
	NotECT Class = iota
	// ECT: an ECN-capable packet, marked instead of dropped when
	// Params.ECN is set.
	ECT
	// Spared: a packet the controller lets through even when a drop is
	// due, leaving the drop to the next packet of its queue. It is for
	// small packets: dropping one shortens the queue by little, and they
	// are mostly the ones whose loss costs their flow most (a TCP
	// acknowledgement, a DNS query, a game's or a call's frame), in a
	// queue that cannot tell them from the bulk flow beside them.
	Spared
)

func (v Verdict) String() string {
	switch v {
	case Drop:
		return "drop"
	case Mark:
		return "mark"
	}
	return "deliver"
}

// maxCount caps the drops counted in one episode, and so the drop rate:
// at most sqrt(maxCount) = 16 drops per interval. On a link a drop is
// free, but here each dropped packet was read from the kernel first; a
// flow that ignores drops (a flood) would otherwise drive the rate up
// without bound, until the tunnel spent its CPU reading packets only to
// drop them. Responsive flows need far fewer: each drop halves a TCP
// sender's window, and 16 per interval reach every flow of a busy tunnel
// within a few intervals.
const maxCount = 256

// State is one queue's controller: in fq_codel terms, one flow's CoDel
// variables. The zero value is ready. A State is used by the queue's
// consumer only; it has no locks.
type State struct {
	firstAbove time.Duration // when the delay, above target since, may first cause a drop; 0: below target
	dropNext   time.Duration // when the next drop is due, while dropping
	count      uint32        // drops (and marks) of this episode
	lastCount  uint32        // count when the last episode began
	dropping   bool
}

// Decide says what to do with the packet at the head of the queue, which
// waited sojourn and leaves now, with backlog bytes left behind it in
// its queue and c saying how it may be acted on. Call it for every
// packet the queue hands out, in order; after Drop, call it again for the
// next packet at the same now.
func (s *State) Decide(p *Params, now, sojourn time.Duration, backlog int, c Class) Verdict {
	if sojourn < p.Target && !s.dropping {
		// The common case, kept short enough to inline: below target,
		// not dropping.
		s.firstAbove = 0
		return Deliver
	}
	return s.decide(p, now, sojourn, backlog, c)
}

func (s *State) decide(p *Params, now, sojourn time.Duration, backlog int, c Class) Verdict {
	above := s.shouldDrop(p, now, sojourn, backlog)
	if s.dropping {
		if !above {
			s.dropping = false
			return Deliver
		}
		if now < s.dropNext || c == Spared {
			return Deliver // a spared packet leaves the due drop to the next
		}
		s.count = min(s.count+1, maxCount)
		s.dropNext = s.controlLaw(p, s.dropNext)
		return s.act(p, c)
	}
	if !above || c == Spared {
		return Deliver
	}
	// Enter dropping. If the last episode ended a moment ago, take up its
	// drop rate where it was (the drops it needed beyond its start),
	// rather than find it again from one.
	s.dropping = true
	if s.count > s.lastCount+1 && now-s.dropNext < 16*p.Interval {
		s.count -= s.lastCount
	} else {
		s.count = 1
	}
	s.lastCount = s.count
	s.dropNext = s.controlLaw(p, now)
	return s.act(p, c)
}

// Dropping reports whether the controller is in a dropping episode: the
// delay has stood above target for an interval and not yet fallen below.
func (s *State) Dropping() bool { return s.dropping }

// Reset forgets everything, as when the queue's flow has gone idle and
// its slot is reused for another.
func (s *State) Reset() { *s = State{} }

func (s *State) act(p *Params, c Class) Verdict {
	if p.ECN && c == ECT {
		return Mark
	}
	return Drop
}

// shouldDrop tracks whether the delay has stood above target for a whole
// interval: the first packet above target starts the interval, any packet
// below it (or a queue down to one packet) ends it.
func (s *State) shouldDrop(p *Params, now, sojourn time.Duration, backlog int) bool {
	if sojourn < p.Target || backlog <= p.MTU {
		s.firstAbove = 0
		return false
	}
	if s.firstAbove == 0 {
		s.firstAbove = now + p.Interval
		if s.firstAbove == 0 {
			s.firstAbove = 1 // 0 means "below": keep an epoch-exact time distinct
		}
		return false
	}
	return now >= s.firstAbove
}

// controlLaw is when the next drop is due after one at t: interval over
// the square root of the drops so far, so the rate rises slowly enough
// for TCP to answer each drop, and fast enough to catch up with many
// flows.
func (s *State) controlLaw(p *Params, t time.Duration) time.Duration {
	return t + time.Duration(float64(p.Interval)/math.Sqrt(float64(s.count)))
}
