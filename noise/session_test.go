package noise

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/wire"
)

// sessT0 is the fake clock's epoch; tests pass sessT0.Add(d) as now.
var sessT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sessAt(d time.Duration) time.Time { return sessT0.Add(d) }

// sessKeypair builds a keypair with fixed keys; index tells them apart.
func sessKeypair(index uint32, initiator bool, created time.Time) *Keypair {
	var k1, k2 [32]byte
	k1[0], k2[0] = 1, 2
	return NewKeypair(&k1, &k2, index, index+1000, initiator, created)
}

// sessSetSendCount moves a keypair's send counter, to test the limits without
// sealing 2^60 messages.
func sessSetSendCount(kp *Keypair, n uint64) { kp.sendCounter.Store(n) }

// sessSetSlots puts a session into a given state directly, for table tests.
func sessSetSlots(s *Session, cur, prev, next *Keypair) {
	s.current.Store(cur)
	s.previous.Store(prev)
	s.next.Store(next)
}

func TestSessionInstallRotation(t *testing.T) {
	A, P, N := sessKeypair(1, true, sessT0), sessKeypair(2, true, sessT0), sessKeypair(3, false, sessT0)
	I, R := sessKeypair(10, true, sessT0), sessKeypair(11, false, sessT0)
	tests := []struct {
		name                       string
		cur, prev, next            *Keypair
		install                    *Keypair
		wantCur, wantPrev, wantNxt *Keypair
		wantDropped                Dropped
	}{
		{"initiator onto empty", nil, nil, nil, I, I, nil, nil, Dropped{}},
		{"initiator onto current", A, nil, nil, I, I, A, nil, Dropped{}},
		{"initiator drops previous", A, P, nil, I, I, A, nil, Dropped{nil, P}},
		{"initiator with next waiting: next becomes previous", A, P, N, I, I, N, nil, Dropped{A, P}},
		{"responder onto empty", nil, nil, nil, R, nil, nil, R, Dropped{}},
		{"responder waits in next, drops previous", A, P, nil, R, A, nil, R, Dropped{nil, P}},
		{"responder replaces next", A, nil, N, R, A, nil, R, Dropped{N}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Session
			sessSetSlots(&s, tt.cur, tt.prev, tt.next)
			d := s.Install(tt.install, sessT0)
			cur, prev, next := s.Keypairs()
			if cur != tt.wantCur || prev != tt.wantPrev || next != tt.wantNxt {
				t.Errorf("slots = %v %v %v, want %v %v %v", cur, prev, next, tt.wantCur, tt.wantPrev, tt.wantNxt)
			}
			if d != tt.wantDropped {
				t.Errorf("dropped = %v, want %v", d, tt.wantDropped)
			}
		})
	}
}

// TestSessionResponderPromotion: a responder never sends with a keypair
// the initiator has not confirmed by using it.
func TestSessionResponderPromotion(t *testing.T) {
	var s Session
	old := sessKeypair(1, true, sessT0)
	s.Install(old, sessT0)
	s.Tick(sessT0)

	now := sessAt(30 * time.Second)
	fresh := sessKeypair(2, false, now)
	s.Install(fresh, now)
	if kp, ok := s.SendKeypair(now); !ok || kp != old {
		t.Fatalf("SendKeypair before confirmation = %v, %v; want the old keypair", kp, ok)
	}
	if !s.ReceiveAllowed(fresh, now) || !s.ReceiveAllowed(old, now) {
		t.Fatal("both next and current must receive")
	}
	// A message on the old keypair confirms nothing.
	s.TransportReceived(old, now, true)
	if s.Current() != old {
		t.Fatal("promoted on a message with the old keypair")
	}
	if a, _ := s.Tick(now); a.Has(ActionSendQueued) {
		t.Fatalf("Tick = %v before confirmation", a)
	}
	// The first message on next promotes it.
	now = now.Add(time.Second)
	if d := s.TransportReceived(fresh, now, false); d != (Dropped{}) {
		t.Fatalf("promotion dropped %v; previous was empty", d)
	}
	cur, prev, next := s.Keypairs()
	if cur != fresh || prev != old || next != nil {
		t.Fatalf("after promotion slots = %v %v %v", cur, prev, next)
	}
	if kp, ok := s.SendKeypair(now); !ok || kp != fresh {
		t.Fatal("promoted keypair does not send")
	}
	if a, _ := s.Tick(now); !a.Has(ActionSendQueued) {
		t.Fatalf("Tick = %v after promotion, want SendQueued", a)
	}
	if !s.LastHandshake().Equal(now) {
		t.Fatalf("LastHandshake = %v, want the confirmation time", s.LastHandshake())
	}
}

// TestSessionPreviousStillReceives: after a rotation the peer may still
// send on the old keypair for a while; those packets are accepted until
// the next rotation drops it.
func TestSessionPreviousStillReceives(t *testing.T) {
	var s Session
	k1 := sessKeypair(1, true, sessT0)
	s.Install(k1, sessT0)
	now := sessAt(120 * time.Second)
	k2 := sessKeypair(2, true, now)
	s.Install(k2, now)
	if !s.ReceiveAllowed(k1, now) {
		t.Fatal("previous keypair must still receive")
	}
	s.TransportReceived(k1, now, true)
	if s.Current() != k2 {
		t.Fatal("receiving on previous changed current")
	}
	now = sessAt(240 * time.Second)
	d := s.Install(sessKeypair(3, true, now), now)
	if d != (Dropped{nil, k1}) {
		t.Fatalf("second rotation dropped %v, want k1", d)
	}
	if s.ReceiveAllowed(k1, now) {
		t.Fatal("a dropped keypair still receives")
	}
}

// TestSessionRejectAfterTime: a keypair neither sends nor receives once it
// is RejectAfterTime old.
func TestSessionRejectAfterTime(t *testing.T) {
	var s Session
	kp := sessKeypair(1, true, sessT0)
	s.Install(kp, sessT0)
	tests := []struct {
		age  time.Duration
		want bool
	}{
		{0, true},
		{RejectAfterTime - time.Nanosecond, true},
		{RejectAfterTime, false},
		{time.Hour, false},
	}
	for _, tt := range tests {
		now := sessAt(tt.age)
		if _, ok := s.SendKeypair(now); ok != tt.want {
			t.Errorf("age %v: SendKeypair ok = %v, want %v", tt.age, ok, tt.want)
		}
		if got := s.ReceiveAllowed(kp, now); got != tt.want {
			t.Errorf("age %v: ReceiveAllowed = %v, want %v", tt.age, got, tt.want)
		}
	}
}

// TestSessionCounterExhaustion: at RejectAfterMessages the keypair stops
// sealing and SendKeypair refuses it; RekeyAfterMessages asks for a
// handshake well before, on either side.
func TestSessionCounterExhaustion(t *testing.T) {
	var s Session
	kp := sessKeypair(1, false, sessT0)
	sessSetSlots(&s, kp, nil, nil)
	sessSetSendCount(kp, RejectAfterMessages-1)
	if _, ok := s.SendKeypair(sessT0); !ok {
		t.Fatal("SendKeypair refused the keypair one counter before the limit")
	}
	var p wire.Packet
	if c, err := kp.Seal(&p); err != nil || c != RejectAfterMessages-1 {
		t.Fatalf("last Seal = %d, %v", c, err)
	}
	if _, err := kp.Seal(&p); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("Seal past the limit = %v, want ErrCounterExhausted", err)
	}
	if _, ok := s.SendKeypair(sessT0); ok {
		t.Fatal("SendKeypair offers an exhausted keypair")
	}

	for _, initiator := range []bool{true, false} {
		var s Session
		kp := sessKeypair(1, initiator, sessT0)
		sessSetSlots(&s, kp, nil, nil)
		sessSetSendCount(kp, RekeyAfterMessages-1)
		s.TransportSent(sessT0, true)
		if a, _ := s.Tick(sessT0); a.Has(ActionSendInitiation) {
			t.Fatalf("initiator=%v: rekey before RekeyAfterMessages", initiator)
		}
		sessSetSendCount(kp, RekeyAfterMessages)
		s.TransportSent(sessT0, true)
		if a, _ := s.Tick(sessT0); !a.Has(ActionSendInitiation) {
			t.Fatalf("initiator=%v: no rekey at RekeyAfterMessages (Tick = %v)", initiator, a)
		}
	}
}

// TestSessionZeroedKeysAreDead: keys erased by the zero-keys timer cannot
// send, even through a pointer an encrypt worker still holds, nor receive.
func TestSessionZeroedKeysAreDead(t *testing.T) {
	var s Session
	kp := sessKeypair(1, true, sessT0)
	s.Install(kp, sessT0)
	held := s.Current()
	_, d := s.Tick(sessAt(ZeroKeysAfter))
	if d[0] != kp {
		t.Fatalf("Dropped = %v, want the current keypair", d)
	}
	if s.Current() != nil || s.ReceiveAllowed(kp, sessT0) {
		t.Fatal("zeroed keypair still in use")
	}
	var p wire.Packet
	if _, err := held.Seal(&p); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("Seal on a zeroed keypair = %v", err)
	}
}

func TestSessionStop(t *testing.T) {
	var s Session
	s.SetPersistentKeepalive(25*time.Second, sessT0)
	k1, k2 := sessKeypair(1, true, sessT0), sessKeypair(2, false, sessT0)
	s.Install(k1, sessT0)
	s.Install(k2, sessT0)
	s.RequestHandshake(sessT0)
	if d := s.Stop(); d != (Dropped{k1, nil, k2}) {
		t.Fatalf("Stop dropped %v", d)
	}
	if !s.NextDeadline().IsZero() {
		t.Fatal("timers armed after Stop")
	}
	if s.PersistentKeepalive() != 25*time.Second {
		t.Fatal("Stop lost the persistent keepalive setting")
	}
}

// TestSessionReset: after the private key changed, every keypair is gone
// and none sends or receives, the last handshake time stays, and the
// session asks for what a new session needs: a handshake at once when
// packets wait (no matter how recently the last initiation went out),
// and a keepalive at once for a persistent keepalive, which then asks
// for the handshake itself.
func TestSessionReset(t *testing.T) {
	for _, tc := range []struct {
		name       string
		persistent time.Duration
		waiting    bool
		want       Actions
	}{
		{"idle", 0, false, 0},
		{"waiting", 0, true, ActionSendInitiation},
		{"persistent", 25 * time.Second, false, ActionSendKeepalive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Session
			s.SetPersistentKeepalive(tc.persistent, sessT0)
			k1 := sessKeypair(1, true, sessT0)
			s.Install(k1, sessT0)
			s.Tick(sessT0)
			s.RequestHandshake(sessT0) // an initiation went out just now
			s.Tick(sessT0)
			now := sessAt(time.Second)
			if d := s.Reset(now, tc.waiting); d != (Dropped{k1}) {
				t.Fatalf("Reset dropped %v", d)
			}
			if _, ok := s.SendKeypair(now); ok || s.ReceiveAllowed(k1, now) {
				t.Fatal("the old keypair still sends or receives")
			}
			if !s.LastHandshake().Equal(sessT0) {
				t.Errorf("last handshake %v, want %v", s.LastHandshake(), sessT0)
			}
			a, _ := s.Tick(now)
			if a != tc.want {
				t.Errorf("actions after Reset: %v, want %v", a, tc.want)
			}
			if tc.persistent > 0 && s.NextDeadline().IsZero() {
				t.Error("persistent keepalive disarmed")
			}
		})
	}
}

// TestSessionConcurrentRotation runs encrypt workers (Current, SendKeypair,
// Seal) and a decrypt-side reader (ReceiveAllowed) against a handshake
// actor that rotates keypairs and a timer actor that ticks. Run with -race.
func TestSessionConcurrentRotation(t *testing.T) {
	var s Session
	s.Jitter = func() time.Duration { return 0 }
	var now atomic.Int64 // nanoseconds since sessT0, the shared fake clock
	clock := func() time.Time { return sessAt(time.Duration(now.Load())) }
	s.Install(sessKeypair(0, true, clock()), clock())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sealed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p wire.Packet
			for {
				select {
				case <-stop:
					return
				default:
				}
				if kp, ok := s.SendKeypair(clock()); ok {
					p.InnerLen = 64
					if _, err := kp.Seal(&p); err == nil {
						sealed.Add(1)
						s.ReceiveAllowed(kp, clock())
					}
				}
				if kp := s.Current(); kp != nil {
					_ = kp.SendCount()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // timer actor
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.Tick(clock())
			s.NextDeadline()
			s.TransportSent(clock(), true)
		}
	}()
	for i := uint32(1); i <= 300; i++ {
		now.Add(int64(time.Second))
		s.Install(sessKeypair(i, i%3 != 0, clock()), clock())
		if nxt := s.next.Load(); nxt != nil {
			s.TransportReceived(nxt, clock(), true)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let the workers get some sealing done
		}
	}
	close(stop)
	wg.Wait()
	if sealed.Load() == 0 {
		t.Fatal("no packet was sealed")
	}
}

func TestSessionHotPathNoAllocs(t *testing.T) {
	var s Session // default jitter: math/rand/v2 must not allocate either
	kp := sessKeypair(1, true, sessT0)
	s.Install(kp, sessT0)
	now := sessT0
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		s.SendKeypair(now)
		s.TransportSent(now, true)
		s.ReceiveAllowed(kp, now)
		s.TransportReceived(kp, now, true)
		s.Tick(now)
		s.NextDeadline()
	})
	if allocs != 0 {
		t.Fatalf("per-batch session calls allocate %v times", allocs)
	}
}

// TestSessionReceiveAllowedDuringRotation races ReceiveAllowed against
// the three ways a keypair moves between slots (next → current on
// confirmation, current → previous and next → previous on an initiator's
// Install): a keypair that stays in the session throughout must never be
// refused. Reading the slots against the direction keypairs move in lost
// a few hundred packets per 200,000 rotations.
//
// The writer marks each stretch in which no watched keypair is dropped
// with an even generation; the reader counts only refusals whose whole
// check fell inside one such stretch.
func TestSessionReceiveAllowedDuringRotation(t *testing.T) {
	rotations := 200_000
	if testing.Short() {
		rotations = 30_000
	}
	var s Session
	s.Jitter = func() time.Duration { return 0 }
	type watch struct{ a, b *Keypair }
	var (
		gen     atomic.Uint64 // odd while keypairs are dropped
		watched atomic.Pointer[watch]
		seen    atomic.Uint64 // the last generation the reader checked in
		done    atomic.Bool
		checks  atomic.Int64
		refused atomic.Int64
	)
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		for !done.Load() {
			g := gen.Load()
			w := watched.Load()
			if g%2 == 1 || w == nil {
				continue
			}
			okA := s.ReceiveAllowed(w.a, sessT0)
			okB := w.b == nil || s.ReceiveAllowed(w.b, sessT0)
			if gen.Load() != g {
				continue // a drop may have begun meanwhile
			}
			checks.Add(1)
			seen.Store(g)
			if !okA || !okB {
				refused.Add(1)
			}
		}
	}()
	index := uint32(0)
	kp := func(initiator bool) *Keypair { index++; return sessKeypair(index, initiator, sessT0) }
	// safe publishes the keypairs to watch and opens a stretch without
	// drops, then waits (a little, at most) until the reader checks in
	// it, so that the move that follows overlaps its checks; drops closes
	// the stretch.
	safe := func(a, b *Keypair) {
		watched.Store(&watch{a, b})
		g := gen.Add(1)
		for spin := 0; spin < 100 && seen.Load() != g; spin++ {
			runtime.Gosched()
		}
	}
	drops := func() { gen.Add(1) }

	drops()
	cur := kp(true)
	s.Install(cur, sessT0)
	for i := 0; i < rotations; i += 3 {
		// next → current, current → previous.
		next := kp(false)
		s.Install(next, sessT0) // drops previous
		safe(cur, next)
		s.TransportReceived(next, sessT0, true)
		drops()
		// current → previous under an initiator's keypair.
		ini := kp(true)
		safe(next, nil)
		s.Install(ini, sessT0) // drops old previous (cur), which we no longer watch
		drops()
		// next → previous under an initiator's keypair.
		waiting := kp(false)
		s.Install(waiting, sessT0) // drops previous
		cur = kp(true)
		safe(waiting, nil)
		s.Install(cur, sessT0) // drops ini, unwatched
		drops()
	}
	done.Store(true)
	<-reader
	t.Logf("%d rotations, %d checks during them, %d false refusals", rotations, checks.Load(), refused.Load())
	if checks.Load() == 0 {
		t.Fatal("the reader never checked during a rotation")
	}
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d authenticated packets refused while their keypair moved between slots", n)
	}
}
