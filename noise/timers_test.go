package noise

import (
	"slices"
	"strings"
	"testing"
	"time"

	"pipeguard/wire"
)

// sessFiring is one Tick that returned actions, at an offset from sessT0.
type sessFiring struct {
	at time.Duration
	a  Actions
}

// sessEvent is something the pipeline reports at a given offset.
type sessEvent struct {
	at time.Duration
	do func(s *Session, now time.Time)
}

// sessScenario plays the timer actor on a fake clock: it calls Tick at
// every deadline NextDeadline names, applies the events in between, and
// lets react answer each firing as the pipeline would. It returns all
// firings up to end.
func sessScenario(t *testing.T, s *Session, events []sessEvent, end time.Duration, react func(s *Session, now time.Time, a Actions)) []sessFiring {
	t.Helper()
	var out []sessFiring
	runUntil := func(limit time.Duration) {
		for range 100000 {
			d := s.NextDeadline()
			if d.IsZero() || d.After(sessAt(limit)) {
				return
			}
			a, _ := s.Tick(d)
			if a != 0 {
				out = append(out, sessFiring{d.Sub(sessT0), a})
				if react != nil {
					react(s, d, a)
				}
			}
		}
		t.Fatal("timer loop did not settle")
	}
	for _, ev := range events {
		runUntil(ev.at)
		ev.do(s, sessAt(ev.at))
	}
	runUntil(end)
	return out
}

// sessTimes returns the offsets at which action a fired.
func sessTimes(fs []sessFiring, a Actions) []time.Duration {
	var out []time.Duration
	for _, f := range fs {
		if f.a.Has(a) {
			out = append(out, f.at)
		}
	}
	return out
}

func noJitter() time.Duration { return 0 }

func sent(data bool) func(*Session, time.Time) {
	return func(s *Session, now time.Time) { s.TransportSent(now, data) }
}

func received(data bool) func(*Session, time.Time) {
	return func(s *Session, now time.Time) { s.TransportReceived(s.Current(), now, data) }
}

// reactLikePipeline reports the sends a real pipeline would make.
func reactLikePipeline(s *Session, now time.Time, a Actions) {
	if a.Has(ActionSendInitiation) {
		s.InitiationSent(now)
	}
	if a.Has(ActionSendKeepalive) {
		s.TransportSent(now, false)
	}
}

// TestTimersRekeyAfterTime: sending on a keypair we initiated asks for a
// new handshake once it is RekeyAfterTime old, and then at most once per
// RekeyTimeout; a responder's keypair is never rekeyed by age from our
// side.
func TestTimersRekeyAfterTime(t *testing.T) {
	tests := []struct {
		initiator bool
		want      []time.Duration
	}{
		{true, []time.Duration{120 * time.Second, 125 * time.Second, 130 * time.Second, 135 * time.Second}},
		{false, nil},
	}
	for _, tt := range tests {
		s := Session{Jitter: noJitter}
		kp := sessKeypair(1, tt.initiator, sessT0)
		sessSetSlots(&s, kp, nil, nil)
		var got []time.Duration
		for now := time.Second; now <= 135*time.Second; now += time.Second {
			s.TransportReceived(kp, sessAt(now), true) // two-way traffic every second
			s.TransportSent(sessAt(now), true)
			if a, _ := s.Tick(sessAt(now)); a.Has(ActionSendInitiation) {
				got = append(got, now)
				s.InitiationSent(sessAt(now))
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("initiator=%v: initiations at %v, want %v", tt.initiator, got, tt.want)
		}
	}
}

// TestTimersKeepKeyFreshReceiving: an initiator that only receives rekeys
// RejectAfterTime-KeepaliveTimeout-RekeyTimeout (165 s) into the keypair's
// life, and only once: later receives do not restart the retry count, so
// the retries can still give up.
func TestTimersKeepKeyFreshReceiving(t *testing.T) {
	for _, initiator := range []bool{true, false} {
		s := Session{Jitter: noJitter}
		kp := sessKeypair(1, initiator, sessT0)
		sessSetSlots(&s, kp, nil, nil)
		var got []time.Duration
		for _, at := range []time.Duration{165*time.Second - time.Millisecond, 165 * time.Second} {
			s.TransportReceived(kp, sessAt(at), true)
			if a, _ := s.Tick(sessAt(at)); a.Has(ActionSendInitiation) {
				got = append(got, at)
				s.InitiationSent(sessAt(at))
			}
		}
		var want []time.Duration
		if initiator {
			want = []time.Duration{165 * time.Second}
		}
		if !slices.Equal(got, want) {
			t.Errorf("initiator=%v: initiations at %v, want %v", initiator, got, want)
		}
		if !initiator {
			continue
		}
		s.Tick(sessAt(170 * time.Second)) // first retry
		s.TransportReceived(kp, sessAt(171*time.Second), true)
		if s.t.attempts != 1 {
			t.Errorf("a later receive restarted the retry count (attempts = %d)", s.t.attempts)
		}
	}
}

// TestTimersZeroKeys: ZeroKeysAfter (540 s) after the last session was
// derived, every key is erased.
func TestTimersZeroKeys(t *testing.T) {
	tests := []struct {
		name     string
		installs []time.Duration
		want     time.Duration
	}{
		{"one session", []time.Duration{0}, 540 * time.Second},
		{"a later session restarts the countdown", []time.Duration{0, 300 * time.Second}, 840 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Session
			var events []sessEvent
			for i, at := range tt.installs {
				events = append(events, sessEvent{at, func(s *Session, now time.Time) {
					s.Install(sessKeypair(uint32(i), true, now), now)
				}})
			}
			fs := sessScenario(t, &s, events, time.Hour, nil)
			if got := sessTimes(fs, ActionZeroKeys); !slices.Equal(got, []time.Duration{tt.want}) {
				t.Fatalf("keys zeroed at %v, want %v", got, tt.want)
			}
			if cur, prev, next := s.Keypairs(); cur != nil || prev != nil || next != nil {
				t.Fatal("keypairs left after zeroing")
			}
		})
	}
	// And exactly at the boundary, calling Tick by hand.
	var s Session
	s.Install(sessKeypair(1, true, sessT0), sessT0)
	if a, _ := s.Tick(sessAt(539 * time.Second)); a.Has(ActionZeroKeys) {
		t.Fatal("keys zeroed at 539 s")
	}
	if a, d := s.Tick(sessAt(540 * time.Second)); !a.Has(ActionZeroKeys|ActionDropQueued) || d[0] == nil {
		t.Fatalf("Tick at 540 s = %v, %v; want ZeroKeys|DropQueued and the keypair", a, d)
	}
}

// TestTimersKeepalive: after receiving data, if we have sent nothing for
// KeepaliveTimeout, send an empty message so the peer knows we are alive.
func TestTimersKeepalive(t *testing.T) {
	tests := []struct {
		name   string
		events []sessEvent
		want   []time.Duration
	}{
		{"receive only", []sessEvent{{0, received(true)}}, []time.Duration{10 * time.Second}},
		{"we answered", []sessEvent{{0, received(true)}, {3 * time.Second, sent(true)}}, nil},
		{"a keepalive needs no answer", []sessEvent{{0, received(false)}}, nil},
		{"more data does not postpone it", []sessEvent{{0, received(true)}, {4 * time.Second, received(true)}}, []time.Duration{10 * time.Second}},
		{"data after the keepalive", []sessEvent{{0, received(true)}, {12 * time.Second, received(true)}}, []time.Duration{10 * time.Second, 22 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Session{Jitter: noJitter}
			sessSetSlots(&s, sessKeypair(1, false, sessT0), nil, nil)
			fs := sessScenario(t, &s, tt.events, 60*time.Second, reactLikePipeline)
			if got := sessTimes(fs, ActionSendKeepalive); !slices.Equal(got, tt.want) {
				t.Fatalf("keepalives at %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTimersNewHandshakeAfterSilence: if we send data and hear nothing
// for KeepaliveTimeout+RekeyTimeout, the session may be dead at the peer:
// initiate.
func TestTimersNewHandshakeAfterSilence(t *testing.T) {
	tests := []struct {
		name   string
		events []sessEvent
		want   time.Duration // first initiation; 0: none
	}{
		{"silence", []sessEvent{{time.Second, sent(true)}}, 16 * time.Second},
		{"more sends do not postpone it", []sessEvent{{time.Second, sent(true)}, {5 * time.Second, sent(true)}, {9 * time.Second, sent(true)}}, 16 * time.Second},
		{"a keepalive back is enough", []sessEvent{{time.Second, sent(true)}, {10 * time.Second, received(false)}}, 0},
		{"keepalives alone expect no answer", []sessEvent{{time.Second, sent(false)}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Session{Jitter: noJitter}
			sessSetSlots(&s, sessKeypair(1, true, sessT0), nil, nil)
			fs := sessScenario(t, &s, tt.events, 60*time.Second, reactLikePipeline)
			got := sessTimes(fs, ActionSendInitiation)
			switch {
			case tt.want == 0 && len(got) != 0:
				t.Fatalf("initiations at %v, want none", got)
			case tt.want != 0 && (len(got) == 0 || got[0] != tt.want):
				t.Fatalf("initiations at %v, want the first at %v", got, tt.want)
			}
		})
	}
}

// TestTimersHandshakeRetransmit: an unanswered initiation is retried every
// RekeyTimeout plus jitter; after MaxHandshakeAttempts initiations (90 s)
// the session gives up, drops the queue, and retries only when there is
// new data to send.
func TestTimersHandshakeRetransmit(t *testing.T) {
	for _, jitter := range []time.Duration{0, 100 * time.Millisecond} {
		s := Session{Jitter: func() time.Duration { return jitter }}
		events := []sessEvent{{0, func(s *Session, now time.Time) { s.RequestHandshake(now) }}}
		fs := sessScenario(t, &s, events, 300*time.Second, reactLikePipeline)
		step := RekeyTimeout + jitter
		var want []time.Duration
		for i := range MaxHandshakeAttempts {
			want = append(want, time.Duration(i)*step)
		}
		if got := sessTimes(fs, ActionSendInitiation); !slices.Equal(got, want) {
			t.Fatalf("jitter %v: initiations at %v, want %v", jitter, got, want)
		}
		giveUp := time.Duration(MaxHandshakeAttempts) * step
		if got := sessTimes(fs, ActionDropQueued); !slices.Equal(got, []time.Duration{giveUp}) {
			t.Fatalf("jitter %v: gave up at %v, want %v", jitter, got, giveUp)
		}
		// Giving up leaves only the erasure of partial state armed.
		if d := s.NextDeadline(); !d.Equal(sessAt(giveUp + ZeroKeysAfter)) {
			t.Fatalf("jitter %v: next deadline %v after giving up", jitter, d.Sub(sessT0))
		}
		// New data to send starts over.
		s.RequestHandshake(sessAt(300 * time.Second))
		if a, _ := s.Tick(sessAt(300 * time.Second)); !a.Has(ActionSendInitiation) {
			t.Fatalf("jitter %v: no initiation for new data after giving up", jitter)
		}
	}
}

// TestTimersRetransmitJitterDefault: the default jitter stays within
// [0, RekeyTimeoutJitterMax).
func TestTimersRetransmitJitterDefault(t *testing.T) {
	var s Session
	events := []sessEvent{{0, func(s *Session, now time.Time) { s.RequestHandshake(now) }}}
	got := sessTimes(sessScenario(t, &s, events, 300*time.Second, reactLikePipeline), ActionSendInitiation)
	if len(got) != MaxHandshakeAttempts {
		t.Fatalf("%d initiations, want %d", len(got), MaxHandshakeAttempts)
	}
	for i := 1; i < len(got); i++ {
		if d := got[i] - got[i-1]; d < RekeyTimeout || d >= RekeyTimeout+RekeyTimeoutJitterMax {
			t.Fatalf("retry %d after %v", i, d)
		}
	}
}

// TestTimersHandshakeCompletesStopsRetries: the response stops the retries.
func TestTimersHandshakeCompletesStopsRetries(t *testing.T) {
	s := Session{Jitter: noJitter}
	events := []sessEvent{
		{0, func(s *Session, now time.Time) { s.RequestHandshake(now) }},
		{7 * time.Second, func(s *Session, now time.Time) {
			s.HandshakeReceived(now)
			s.Install(sessKeypair(1, true, now), now)
		}},
	}
	fs := sessScenario(t, &s, events, 100*time.Second, reactLikePipeline)
	if got := sessTimes(fs, ActionSendInitiation); !slices.Equal(got, []time.Duration{0, 5 * time.Second}) {
		t.Fatalf("initiations at %v", got)
	}
	if got := sessTimes(fs, ActionSendQueued); !slices.Equal(got, []time.Duration{7 * time.Second}) {
		t.Fatalf("queue sent at %v, want at the handshake", got)
	}
}

// TestTimersPersistentKeepalive: with a persistent keepalive of N, a
// keepalive goes out whenever nothing authenticated passed for N.
func TestTimersPersistentKeepalive(t *testing.T) {
	s := Session{Jitter: noJitter}
	sessSetSlots(&s, sessKeypair(1, false, sessT0), nil, nil)
	events := []sessEvent{
		{0, func(s *Session, now time.Time) { s.SetPersistentKeepalive(25*time.Second, now) }},
		{60 * time.Second, received(false)}, // traffic postpones the next one
		{120 * time.Second, func(s *Session, now time.Time) { s.SetPersistentKeepalive(0, now) }},
	}
	fs := sessScenario(t, &s, events, 300*time.Second, reactLikePipeline)
	want := []time.Duration{0, 25 * time.Second, 50 * time.Second, 85 * time.Second, 110 * time.Second}
	if got := sessTimes(fs, ActionSendKeepalive); !slices.Equal(got, want) {
		t.Fatalf("keepalives at %v, want %v", got, want)
	}
}

// TestTimersWake: the timer actor is woken when an event makes something
// due before the deadline it sleeps until, and not otherwise.
func TestTimersWake(t *testing.T) {
	wakes := 0
	s := Session{Jitter: noJitter, Wake: func() { wakes++ }}
	s.Install(sessKeypair(1, true, sessT0), sessT0) // queue flush due now
	if wakes != 1 {
		t.Fatalf("%d wakes for an action due now", wakes)
	}
	s.Tick(sessT0)
	if d := s.NextDeadline(); !d.Equal(sessAt(ZeroKeysAfter)) {
		t.Fatalf("actor sleeps until %v", d.Sub(sessT0))
	}
	s.TransportReceived(s.Current(), sessAt(time.Second), true) // keepalive at 11 s < 540 s
	if wakes != 2 {
		t.Fatalf("%d wakes, want one for the earlier keepalive deadline", wakes)
	}
	s.TransportReceived(s.Current(), sessAt(2*time.Second), true) // nothing earlier
	s.SetPersistentKeepalive(0, sessAt(2*time.Second))
	if wakes != 2 {
		t.Fatalf("%d wakes, want none for events that move nothing earlier", wakes)
	}
}

// TestTimersTwoPeersForHours runs two sessions against each other for
// three hours of protocol time, with real sealing, opening and replay
// checks and traffic both ways every second: keys rotate about every
// RekeyAfterTime, and no packet ever lacks a keypair or is refused.
func TestTimersTwoPeersForHours(t *testing.T) {
	const hours = 3
	var a, b Session // a initiates the first handshake
	peerOf := map[*Keypair]*Keypair{}
	handshakes, index := 0, uint32(0)
	handshake := func(ini, resp *Session, now time.Time) {
		ini.InitiationSent(now)
		resp.HandshakeReceived(now)
		index++
		k1, k2 := [32]byte{byte(index)}, [32]byte{byte(index), 1}
		kr := NewKeypair(&k2, &k1, index, index+1, false, now)
		resp.Install(kr, now)
		resp.ResponseSent(now)
		now = now.Add(20 * time.Millisecond) // one round trip
		ini.HandshakeReceived(now)
		ki := NewKeypair(&k1, &k2, index+1, index, true, now)
		ini.Install(ki, now)
		peerOf[ki], peerOf[kr] = kr, ki
		handshakes++
	}
	var p sessPacket
	send := func(from, to *Session, now time.Time, data bool) {
		kp, ok := from.SendKeypair(now)
		if !ok {
			t.Fatalf("%v: no keypair to send with", now.Sub(sessT0))
		}
		p.seal(t, kp, data)
		from.TransportSent(now, data)
		rk := peerOf[kp]
		if !to.ReceiveAllowed(rk, now) || !p.open(rk) {
			t.Fatalf("%v: packet refused", now.Sub(sessT0))
		}
		to.TransportReceived(rk, now, data)
	}
	act := func(self, other *Session, now time.Time) {
		acts, _ := self.Tick(now)
		if acts.Has(ActionZeroKeys) || acts.Has(ActionDropQueued) {
			t.Fatalf("%v: %v in steady traffic", now.Sub(sessT0), acts)
		}
		if acts.Has(ActionSendInitiation) {
			handshake(self, other, now)
		}
		if acts.Has(ActionSendKeepalive) {
			send(self, other, now, false)
		}
	}
	a.RequestHandshake(sessT0)
	act(&a, &b, sessT0)
	for now := sessAt(time.Second); now.Before(sessAt(hours * time.Hour)); now = now.Add(time.Second) {
		send(&a, &b, now, true)
		send(&b, &a, now, true)
		act(&a, &b, now)
		act(&b, &a, now)
	}
	t.Logf("%d handshakes in %d hours", handshakes, hours)
	// One handshake per RekeyAfterTime (plus the first), give or take one.
	want := hours * int(time.Hour/RekeyAfterTime)
	if handshakes < want || handshakes > want+2 {
		t.Fatalf("%d handshakes in %d hours, want about %d", handshakes, hours, want)
	}
}

// sessPacket carries one transport message from a sender's Seal to a
// receiver's Open and replay check, as the pipeline would.
type sessPacket struct{ wire.Packet }

func (p *sessPacket) seal(t *testing.T, kp *Keypair, data bool) {
	t.Helper()
	p.InnerLen = 0 // a keepalive
	if data {
		p.InnerLen = 64
	}
	if _, err := kp.Seal(&p.Packet); err != nil {
		t.Fatal(err)
	}
}

// open authenticates the message with kp, then checks the replay window,
// in that order: an unauthenticated counter must not move the window.
func (p *sessPacket) open(kp *Keypair) bool {
	h, err := wire.ParseTransportHeader(p.Message())
	if err != nil || h.Receiver != kp.LocalIndex {
		return false
	}
	if kp.Open(&p.Packet, h.Counter) != nil {
		return false
	}
	return kp.Replay.ValidateCounter(h.Counter, RejectAfterMessages)
}

// TestInstantsKeepMonotonic: the instants count from an epoch that keeps
// the clock's monotonic reading (time.Time prints it as "m=..."), so
// that deadlines compare by it, as time.Time values do, and a step of the
// wall clock moves no deadline. Instants convert back to the same times.
func TestInstantsKeepMonotonic(t *testing.T) {
	var tm timers
	now := time.Now()
	first := tm.at(now)
	if !strings.Contains(tm.epoch.String(), " m=") {
		t.Fatalf("the epoch %v has no monotonic reading", tm.epoch)
	}
	if first == 0 {
		t.Fatal("the first instant is zero")
	}
	later := now.Add(90 * time.Second)
	if d := tm.at(later) - first; time.Duration(d) != 90*time.Second {
		t.Fatalf("two instants 90 s apart differ by %v", time.Duration(d))
	}
	if back := tm.time(first); !back.Equal(now) || back.Sub(now) != 0 {
		t.Fatalf("time(at(now)) = %v, want %v", back, now)
	}
	if !tm.time(0).IsZero() {
		t.Fatal("the zero instant is not the zero time")
	}
}

// TestTimersUnansweredSince: the first initiation after the peer was last
// heard from starts the count; retries and new requests do not move it;
// any authenticated message from the peer (a handshake, transport data,
// a keepalive) ends it. A retry still under way after that (the
// handshake did not complete) starts a new count.
func TestTimersUnansweredSince(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(s *Session, now time.Time)
		nextFrom time.Duration // the next count's start
	}{
		{"completed handshake", func(s *Session, now time.Time) {
			s.HandshakeReceived(now)
			s.Install(sessKeypair(1, true, now), now)
		}, 30 * time.Second},
		{"transport data", func(s *Session, now time.Time) { s.TransportReceived(nil, now, true) }, 21 * time.Second},
		{"keepalive", func(s *Session, now time.Time) { s.TransportReceived(nil, now, false) }, 21 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Session{Jitter: noJitter}
			if got := s.UnansweredSince(); !got.IsZero() {
				t.Fatalf("a new session: unanswered since %v", got)
			}
			var at []time.Duration
			probe := func(s *Session, now time.Time) {
				if u := s.UnansweredSince(); !u.IsZero() {
					at = append(at, u.Sub(sessT0))
				} else {
					at = append(at, -1)
				}
			}
			events := []sessEvent{
				{time.Second, func(s *Session, now time.Time) { s.RequestHandshake(now) }},
				{12 * time.Second, probe}, // after two retries
				{13 * time.Second, func(s *Session, now time.Time) { s.RequestHandshake(now) }}, // new data
				{17 * time.Second, probe},
				{18 * time.Second, tc.answer},
				{18 * time.Second, probe},
				{30 * time.Second, func(s *Session, now time.Time) { s.RequestHandshake(now) }},
				{31 * time.Second, probe},
			}
			sessScenario(t, &s, events, 40*time.Second, reactLikePipeline)
			want := []time.Duration{time.Second, time.Second, -1, tc.nextFrom}
			if !slices.Equal(at, want) {
				t.Errorf("unanswered since %v, want %v (-1: none)", at, want)
			}
		})
	}
}
