package noise

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Dropped lists the keypairs a Session let go of. The caller deletes their
// local indices from the index table, so that messages sent to them are no
// longer routed to this peer. Nil entries are empty; three is the most one
// call can drop (when all keys are zeroed).
type Dropped [3]*Keypair

// Session is one peer's keypair slots and protocol timers. It decides which
// keypair sends, when a keypair may no longer send or receive, and, from
// the events the caller reports and the times it passes, when to initiate
// a handshake, send a keepalive, give up, or erase all keys. It is pure
// logic: it starts no goroutines, arms no real timers and never reads the
// clock; the `now` arguments are the clock, so tests can run hours of
// protocol time in milliseconds.
//
// The slots follow wireguard-go's rules:
//   - current sends and receives;
//   - previous is the keypair current replaced: it still receives, so that
//     packets the peer sent before it saw the new session are not lost;
//   - next is a keypair we derived as responder and must not send with
//     until the peer has used it, which proves the peer has it too (the
//     initiator learns it only from our response, which may be lost).
//
// Who calls what:
//   - outbound: SendKeypair per batch; without a keypair, queue the packets
//     and RequestHandshake; after the send, TransportSent;
//   - inbound: ReceiveAllowed before Open; after Open and the replay check,
//     in order, TransportReceived;
//   - handshake workers: HandshakeReceived, Install, ResponseSent,
//     InitiationSent;
//   - timer actor: Tick at NextDeadline or when Wake fires, and carry out
//     the Actions.
//
// Every method that drops keypairs returns them as Dropped, for the index
// table.
//
// The zero value is a session with no keys and no timers armed, ready to
// use; set Jitter and Wake, if wanted, before its first use. A Session must
// not be copied after first use.
//
// Concurrency: every method is safe for concurrent use. Current, Keypairs,
// SendKeypair and ReceiveAllowed take no lock (atomic loads), for the
// per-packet paths. The event methods and Tick take a mutex briefly; call
// them once per batch of packets, not once per packet.
type Session struct {
	// Jitter returns the random extra delay added to handshake retries and
	// to the silence before a new handshake, in [0, RekeyTimeoutJitterMax),
	// so that peers that lost a handshake together do not retry in
	// lockstep. Nil uses math/rand/v2. Tests set a fixed one. It is called
	// with the session's lock held and must not call back into the Session.
	Jitter func() time.Duration

	// Wake, if not nil, is called (after the lock is released) when an
	// event makes something due earlier than the deadline NextDeadline last
	// reported, or due now: the timer actor must then call Tick and
	// NextDeadline again. It must not block; a non-blocking send on a
	// channel of capacity 1 is the usual body.
	Wake func()

	// The slots. Stores happen only with mu held, so writers see a
	// consistent triple. Loads are lock-free, and a reader that loads the
	// three one after another must still find a keypair that moves while
	// it reads. Two rules make sure it does:
	//   - keypairs move only toward previous: next → current (the peer
	//     confirmed a responder's keypair), current → previous and
	//     next → previous (an initiator's keypair took over), and each
	//     move stores the keypair in its new slot before it leaves the
	//     old one;
	//   - readers load in the same direction: next, then current, then
	//     previous (see ReceiveAllowed).
	// A keypair that leaves a slot after the reader loaded it is already
	// in a slot the reader loads later. Only a keypair dropped meanwhile
	// is missed, and that one is dead anyway.
	current, previous, next atomic.Pointer[Keypair]

	mu sync.Mutex // guards t and serialises all stores to the slots
	t  timers
}

// Current returns the keypair in the current slot, or nil. It may be
// expired; use SendKeypair to pick one to send with.
func (s *Session) Current() *Keypair { return s.current.Load() }

// Keypairs returns the three slots, consistently, for cleanup and status.
func (s *Session) Keypairs() (current, previous, next *Keypair) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current.Load(), s.previous.Load(), s.next.Load()
}

// SendKeypair returns the keypair to seal outgoing packets with: current,
// if it is younger than RejectAfterTime and has not used up its counters.
// Otherwise it returns false: the caller queues the packet and calls
// RequestHandshake. Seal may still fail with ErrCounterExhausted if
// another worker took the last counters meanwhile; treat that the same.
func (s *Session) SendKeypair(now time.Time) (*Keypair, bool) {
	kp := s.current.Load()
	if kp == nil || kp.SendCount() >= RejectAfterMessages || now.Sub(kp.Created) >= RejectAfterTime {
		return nil, false
	}
	return kp, true
}

// ReceiveAllowed reports whether a message authenticated (or about to be
// opened) with kp may be accepted at now: kp must still be in one of the
// session's slots, so keys that were dropped or zeroed are dead even
// while the index table still routes to them, and younger than
// RejectAfterTime.
func (s *Session) ReceiveAllowed(kp *Keypair, now time.Time) bool {
	if kp == nil || now.Sub(kp.Created) >= RejectAfterTime {
		return false
	}
	// next, current, previous: the direction keypairs move in (see the
	// slots' comment), so that a rotation under way cannot hide kp.
	return kp == s.next.Load() || kp == s.current.Load() || kp == s.previous.Load()
}

// Install puts the keypair of a completed handshake into its slot and
// returns the keypairs it displaced.
//
// A keypair we initiated becomes current at once (the response we just
// consumed proves the peer has it): old current becomes previous, and if a
// responder keypair was waiting in next, that one becomes previous instead
// and old current is dropped. Install then counts the handshake as complete
// and asks (ActionSendQueued, ActionSendKeepalive) for the queued packets,
// or a keepalive, to be sent: the responder waits for a transport message
// before it sends with the new keypair.
//
// A keypair we derived as responder goes to next, replacing any keypair
// waiting there, and previous is dropped; it becomes current on the first
// message received with it (TransportReceived).
//
// Either way a session was derived: the zero-keys timer restarts. Call
// Install after sending the response (responder) or consuming it
// (initiator).
func (s *Session) Install(kp *Keypair, now time.Time) Dropped {
	s.mu.Lock()
	defer s.unlock()
	var d Dropped
	cur, prev, next := s.current.Load(), s.previous.Load(), s.next.Load()
	if kp.Initiator {
		if next != nil {
			s.previous.Store(next)
			s.next.Store(nil)
			d[0] = cur
		} else {
			s.previous.Store(cur)
		}
		d[1] = prev
		s.current.Store(kp)
		s.handshakeCompletedLocked(now)
		s.raiseLocked(ActionSendQueued|ActionSendKeepalive, now)
	} else {
		s.next.Store(kp)
		s.previous.Store(nil)
		d[0], d[1] = next, prev
	}
	s.sessionDerivedLocked(now)
	return d
}

// promoteLocked makes kp, which must be in next, current: the peer used it,
// so it has it. Old current becomes previous; old previous is dropped.
func (s *Session) promoteLocked(kp *Keypair) *Keypair {
	dropped := s.previous.Load()
	s.previous.Store(s.current.Load())
	s.current.Store(kp)
	s.next.Store(nil)
	return dropped
}

// zeroKeysLocked empties all slots and pins the send counter of every
// keypair it drops at the limit, so that an encrypt worker still holding
// one gets ErrCounterExhausted from Seal instead of sending with erased
// keys. (Go gives no way to wipe the key schedule inside cipher.AEAD; the
// keys become garbage once nothing refers to them.)
func (s *Session) zeroKeysLocked() Dropped {
	d := Dropped{s.current.Load(), s.previous.Load(), s.next.Load()}
	s.current.Store(nil)
	s.previous.Store(nil)
	s.next.Store(nil)
	for _, kp := range d {
		if kp != nil {
			kp.sendCounter.Store(RejectAfterMessages)
		}
	}
	return d
}

// Stop erases all keys and disarms every timer, for a peer that is removed
// or a device going down. The persistent keepalive setting is kept. The
// caller deletes the returned keypairs' indices and drops queued packets.
func (s *Session) Stop() Dropped {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.zeroKeysLocked()
	s.t = timers{persistentInterval: s.t.persistentInterval}
	return d
}

// Reset erases all keys, as Stop does, for a tunnel whose private key
// changed: every keypair derives from the old key. Unlike Stop it leaves
// the session running, ready for a handshake with the new key: a
// persistent keepalive (kept) is due at once, so a peer that keeps a
// NAT mapping open gets a new session without waiting for traffic, and
// with waiting true (packets are queued for the peer) a handshake is
// asked for at once; the rate limit of one initiation per RekeyTimeout
// starts afresh, as in wireguard-go's ExpireCurrentKeypairs. The last
// handshake time stays for `wg show`. The caller deletes the returned
// keypairs' indices.
func (s *Session) Reset(now time.Time, waiting bool) Dropped {
	s.mu.Lock()
	defer s.unlock()
	d := s.zeroKeysLocked()
	s.t = timers{persistentInterval: s.t.persistentInterval, lastHandshake: s.t.lastHandshake}
	if s.t.persistentInterval > 0 {
		s.raiseLocked(ActionSendKeepalive, now)
		s.armLocked(&s.t.persistent, now.Add(s.t.persistentInterval))
	}
	if waiting {
		s.initiateLocked(now, false)
	}
	return d
}

// unlock releases mu and, if an event made something due earlier than
// the timer actor expects, wakes it. Waking outside the lock lets Wake do
// anything but call back in while we hold it.
func (s *Session) unlock() {
	wake := s.t.wake && s.Wake != nil
	s.t.wake = false
	s.mu.Unlock()
	if wake {
		s.Wake()
	}
}

func (s *Session) jitter() time.Duration {
	if s.Jitter != nil {
		return s.Jitter()
	}
	return rand.N(RekeyTimeoutJitterMax)
}
