package noise

import (
	"strings"
	"time"
)

// Actions is a set of things a peer must do now, returned by Session.Tick.
// The zero value is nothing to do.
type Actions uint8

// The actions, in the order a caller should carry them out.
const (
	// ActionZeroKeys: all keypairs were erased (Tick returns them as
	// Dropped; delete their indices). Also clear any half-done handshake
	// state of this peer and its index. Always comes with ActionDropQueued.
	ActionZeroKeys Actions = 1 << iota
	// ActionDropQueued: drop the packets queued for lack of a keypair,
	// because the handshake gave up or the keys were zeroed.
	ActionDropQueued
	// ActionSendQueued: a keypair became usable for sending; send the
	// packets queued for lack of one.
	ActionSendQueued
	// ActionSendInitiation: create and send a handshake initiation, then
	// call InitiationSent. The session has already applied the rate limit
	// (one per RekeyTimeout) and armed the retry.
	ActionSendInitiation
	// ActionSendKeepalive: send an empty transport message. Any transport
	// message does, so queued data sent at the same moment satisfies it.
	// Without a keypair that can send, call RequestHandshake instead.
	ActionSendKeepalive
)

// Has reports whether every action in b is in a.
func (a Actions) Has(b Actions) bool { return a&b == b }

func (a Actions) String() string {
	if a == 0 {
		return "none"
	}
	names := [...]string{"ZeroKeys", "DropQueued", "SendQueued", "SendInitiation", "SendKeepalive"}
	var parts []string
	for i, n := range names {
		if a&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, "|")
}

// timers is a Session's timer state. Each deadline is an instant, zero
// when disarmed; Tick fires the ones that are due. The names and rules are
// those of wireguard-go's device/timers.go (itself from Linux's timers.c),
// so the two can be read side by side.
type timers struct {
	epoch time.Time // what the instants count from; set by at on first use

	retransmit   instant // handshake retry: no response to our initiation
	keepalive    instant // we received data and have sent nothing since
	newHandshake instant // we sent data and have heard nothing since
	zeroKeys     instant // no new session derived for ZeroKeysAfter
	persistent   instant // persistent keepalive: traffic has been quiet

	pending      Actions // due now, raised by an event, not yet returned by Tick
	pendingSince instant // when pending became non-empty

	// attempts counts retries of the current handshake; a new (non-retry)
	// request resets it, so a peer with data to send keeps trying.
	attempts                int
	needAnotherKeepalive    bool          // data arrived while a keepalive was already due
	sentLastMinuteHandshake bool          // keepKeyFreshReceiving fired for this session
	lastInitiation          instant       // for the rate limit of one per RekeyTimeout
	lastHandshake           time.Time     // wall clock, for wg show
	unanswered              instant       // first initiation sent since the peer was last heard from; zero: none
	persistentInterval      time.Duration // 0: off

	reported instant // what NextDeadline last returned; zero: the actor sleeps
	wake     bool    // something is due before reported: call Wake on unlock
}

// instant is a moment of the session's clock as nanoseconds after its
// timers' epoch, zero for "not set": 8 bytes where a time.Time takes 24,
// since a gateway keeps one session, with seven of them, per peer. The
// difference of two instants is the difference of the times they stand
// for (monotonic where the clock has it).
type instant int64

// epochBefore puts the epoch this long (13 days) before the first time
// a session is given, so that an instant is zero only for a time exactly
// that long before it; later times count up to 292 years. Not much
// longer: an epoch before 1885 would lose the clock's monotonic reading
// (time.Time keeps one only for wall times from 1885 to 2157), and with
// it the immunity of the deadlines to steps of the wall clock.
const epochBefore = 1 << 50

// at is now as an instant.
func (t *timers) at(now time.Time) instant {
	if t.epoch.IsZero() {
		t.epoch = now.Add(-epochBefore)
	}
	return instant(now.Sub(t.epoch))
}

// time is i as a time (the zero time for the zero instant).
func (t *timers) time(i instant) time.Time {
	if i == 0 {
		return time.Time{}
	}
	return t.epoch.Add(time.Duration(i))
}

// Tick fires the timers due at now and returns what the peer must do, with
// the keypairs erased if ActionZeroKeys is set. The timer actor calls it
// at NextDeadline (late is fine: everything overdue fires at once), or when
// Wake tells it to.
func (s *Session) Tick(now time.Time) (Actions, Dropped) {
	s.mu.Lock()
	defer s.mu.Unlock() // no Wake: our caller is the timer actor, awake
	t := &s.t
	var d Dropped
	at := t.at(now)
	if due(t.retransmit, at) {
		t.retransmit = 0
		s.expiredRetransmitLocked(now)
	}
	if due(t.keepalive, at) {
		t.keepalive = 0
		s.raiseLocked(ActionSendKeepalive, now)
		if t.needAnotherKeepalive {
			t.needAnotherKeepalive = false
			s.armLocked(&t.keepalive, now.Add(KeepaliveTimeout))
		}
	}
	if due(t.newHandshake, at) {
		// We kept sending and heard nothing back: the session may be dead
		// on the peer's side (it restarted, or the path changed).
		t.newHandshake = 0
		s.initiateLocked(now, false)
	}
	if due(t.zeroKeys, at) {
		t.zeroKeys = 0
		d = s.zeroKeysLocked()
		s.raiseLocked(ActionZeroKeys|ActionDropQueued, now)
	}
	if due(t.persistent, at) {
		t.persistent = 0
		if t.persistentInterval > 0 {
			s.raiseLocked(ActionSendKeepalive, now)
			// The keepalive's send re-arms this too (TransportSent); arming
			// here as well keeps it periodic if the caller could not send.
			s.armLocked(&t.persistent, now.Add(t.persistentInterval))
		}
	}
	a := t.pending
	t.pending, t.pendingSince, t.wake = 0, 0, false
	return a, d
}

// NextDeadline returns when Tick must next be called: the earliest armed
// timer, a time at or before now if something is already due, or the zero
// time if nothing is pending (sleep until Wake).
func (s *Session) NextDeadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.t
	var next instant
	for _, d := range [...]instant{t.pendingSince, t.retransmit, t.keepalive, t.newHandshake, t.zeroKeys, t.persistent} {
		if d != 0 && (next == 0 || d < next) {
			next = d
		}
	}
	t.reported = next
	return t.time(next)
}

// Handshaking reports whether a handshake this session started is under
// way: its initiation is due or sent, and no response completed it yet
// (the retry timer is armed). It changes nothing; for status and tests.
func (s *Session) Handshaking() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.retransmit != 0
}

// UnansweredSince returns when the first of the initiations sent since
// the peer was last heard from (an authenticated handshake or transport
// message) went out, or the zero time if none is unanswered. It changes
// nothing; for status and for logging a peer that stops answering.
func (s *Session) UnansweredSince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.time(s.t.unanswered)
}

// LastHandshake returns when the last handshake completed, or the zero
// time.
func (s *Session) LastHandshake() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.lastHandshake
}

// SetPersistentKeepalive sets the persistent keepalive interval (0: off).
// Turning it on sends a keepalive at once, as wireguard-go does, so that a
// peer behind NAT opens its mapping without waiting for traffic.
func (s *Session) SetPersistentKeepalive(interval time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.unlock()
	old := s.t.persistentInterval
	s.t.persistentInterval = max(interval, 0)
	switch {
	case interval <= 0:
		s.t.persistent = 0
	case old == 0:
		s.raiseLocked(ActionSendKeepalive, now)
		s.armLocked(&s.t.persistent, now.Add(interval))
	}
}

// PersistentKeepalive returns the persistent keepalive interval (0: off).
func (s *Session) PersistentKeepalive() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.persistentInterval
}

// RequestHandshake asks for a handshake because a packet found no keypair
// to send with (SendKeypair returned false). It restarts the retry count,
// so a peer with data to send keeps trying; the initiation itself comes
// from Tick, at most one per RekeyTimeout.
func (s *Session) RequestHandshake(now time.Time) {
	s.mu.Lock()
	defer s.unlock()
	s.initiateLocked(now, false)
}

// InitiationSent reports that a handshake initiation was sent at now.
func (s *Session) InitiationSent(now time.Time) {
	s.mu.Lock()
	defer s.unlock()
	s.traversalLocked(now)
	s.anySentLocked()
	// Retry counts from the real send, as in wireguard-go's
	// timersHandshakeInitiated.
	s.t.lastInitiation = s.t.at(now)
	if s.t.unanswered == 0 {
		s.t.unanswered = s.t.lastInitiation
	}
	s.armLocked(&s.t.retransmit, now.Add(RekeyTimeout+s.jitter()))
}

// ResponseSent reports that a handshake response was sent at now (after
// Install of the responder keypair).
func (s *Session) ResponseSent(now time.Time) {
	s.mu.Lock()
	defer s.unlock()
	s.traversalLocked(now)
	s.anySentLocked()
}

// HandshakeReceived reports that an initiation or response from this peer
// passed authentication at now (before Install, for a response).
func (s *Session) HandshakeReceived(now time.Time) {
	s.mu.Lock()
	defer s.unlock()
	s.traversalLocked(now)
	s.anyReceivedLocked()
}

// TransportSent reports that transport messages were sent at now with the
// current keypair; data is false if all were keepalives. Call it once per
// batch, after the send succeeded.
func (s *Session) TransportSent(now time.Time, data bool) {
	s.mu.Lock()
	defer s.unlock()
	s.traversalLocked(now)
	s.anySentLocked()
	if data && s.t.newHandshake == 0 {
		s.armLocked(&s.t.newHandshake, now.Add(KeepaliveTimeout+RekeyTimeout+s.jitter()))
	}
	s.keepKeyFreshSendingLocked(now)
}

// TransportReceived reports that transport messages received with kp were
// authenticated and passed the replay window at now; data is false if all
// were keepalives. Call it once per batch per keypair, from the ordered
// stage. If kp was waiting in next, this is the peer's key confirmation:
// kp becomes current, the handshake is complete, and Tick will ask for the
// queued packets to be sent. It returns the keypair that promotion
// dropped, if any.
func (s *Session) TransportReceived(kp *Keypair, now time.Time, data bool) Dropped {
	s.mu.Lock()
	defer s.unlock()
	var d Dropped
	if kp != nil && kp == s.next.Load() {
		d[0] = s.promoteLocked(kp)
		s.handshakeCompletedLocked(now)
		s.raiseLocked(ActionSendQueued, now)
	}
	s.keepKeyFreshReceivingLocked(now)
	s.traversalLocked(now)
	s.anyReceivedLocked()
	if data {
		if s.t.keepalive == 0 {
			s.armLocked(&s.t.keepalive, now.Add(KeepaliveTimeout))
		} else {
			s.t.needAnotherKeepalive = true
		}
	}
	return d
}

// expiredRetransmitLocked retries an unanswered initiation, or gives up
// after MaxHandshakeAttempts initiations (Rekey-Attempt-Time, 90 s).
// wireguard-go and Linux count two more (20 initiations, about 100 s); we
// keep to the whitepaper's 90 s, which the peer cannot tell apart.
func (s *Session) expiredRetransmitLocked(now time.Time) {
	t := &s.t
	if t.attempts < MaxHandshakeAttempts-1 {
		t.attempts++
		s.initiateLocked(now, true)
		return
	}
	// Give up: no point holding packets for a peer that does not answer.
	// A new packet to send starts over (RequestHandshake).
	s.raiseLocked(ActionDropQueued, now)
	t.keepalive = 0
	if t.zeroKeys == 0 {
		// Erase what a partial exchange may have left.
		s.armLocked(&t.zeroKeys, now.Add(ZeroKeysAfter))
	}
}

// initiateLocked asks for an initiation unless one went out less than
// RekeyTimeout ago. It arms the retry at once, so retries continue even if
// the caller fails to send (InitiationSent re-arms it from the real send).
func (s *Session) initiateLocked(now time.Time, retry bool) {
	t := &s.t
	if !retry {
		t.attempts = 0
	}
	at := t.at(now)
	if t.lastInitiation != 0 && at-t.lastInitiation < instant(RekeyTimeout) {
		return
	}
	t.lastInitiation = at
	s.armLocked(&t.retransmit, now.Add(RekeyTimeout+s.jitter()))
	s.raiseLocked(ActionSendInitiation, now)
}

// keepKeyFreshSendingLocked rekeys before the current keypair runs out:
// by message count on either side, by age only if we are its initiator
// (the responder waits for the initiator, so that both do not rekey at
// once).
func (s *Session) keepKeyFreshSendingLocked(now time.Time) {
	kp := s.current.Load()
	if kp == nil {
		return
	}
	if kp.SendCount() >= RekeyAfterMessages || (kp.Initiator && now.Sub(kp.Created) >= RekeyAfterTime) {
		s.initiateLocked(now, false)
	}
}

// keepKeyFreshReceivingLocked is the initiator's last chance: if the
// current keypair is close to RejectAfterTime and we only receive (so
// keepKeyFreshSending never ran), initiate once, leaving a keepalive and a
// retry of margin before the keypair dies.
func (s *Session) keepKeyFreshReceivingLocked(now time.Time) {
	if s.t.sentLastMinuteHandshake {
		return
	}
	kp := s.current.Load()
	if kp != nil && kp.Initiator && now.Sub(kp.Created) >= RejectAfterTime-KeepaliveTimeout-RekeyTimeout {
		s.t.sentLastMinuteHandshake = true
		s.initiateLocked(now, false)
	}
}

// handshakeCompletedLocked stops the retries: the peer answered.
func (s *Session) handshakeCompletedLocked(now time.Time) {
	t := &s.t
	t.retransmit = 0
	t.attempts = 0
	t.sentLastMinuteHandshake = false
	t.lastHandshake = now
}

// sessionDerivedLocked restarts the countdown to erasing all keys.
func (s *Session) sessionDerivedLocked(now time.Time) {
	s.armLocked(&s.t.zeroKeys, now.Add(ZeroKeysAfter))
}

// traversalLocked notes any authenticated packet sent or received: the
// persistent keepalive counts from the last one.
func (s *Session) traversalLocked(now time.Time) {
	if s.t.persistentInterval > 0 {
		s.armLocked(&s.t.persistent, now.Add(s.t.persistentInterval))
	}
}

// anySentLocked: whatever we sent serves as the keepalive the peer awaits.
func (s *Session) anySentLocked() { s.t.keepalive = 0 }

// anyReceivedLocked: the peer is alive, no need for a new handshake, and
// no initiation of ours is unanswered.
func (s *Session) anyReceivedLocked() {
	s.t.newHandshake = 0
	s.t.unanswered = 0
}

// armLocked sets a deadline, and marks the timer actor for waking if the
// deadline is earlier than the one it sleeps until.
func (s *Session) armLocked(d *instant, at time.Time) {
	s.armInstantLocked(d, s.t.at(at))
}

func (s *Session) armInstantLocked(d *instant, at instant) {
	*d = at
	if s.t.reported == 0 || at < s.t.reported {
		s.t.reported = at // the actor will wake for this; no need to wake it twice
		s.t.wake = true
	}
}

// raiseLocked makes actions due now, for the next Tick.
func (s *Session) raiseLocked(a Actions, now time.Time) {
	if s.t.pending == 0 {
		s.t.pendingSince = s.t.at(now)
	}
	s.t.pending |= a
	s.armInstantLocked(&s.t.pendingSince, s.t.pendingSince)
}

func due(deadline, now instant) bool {
	return deadline != 0 && now >= deadline
}
