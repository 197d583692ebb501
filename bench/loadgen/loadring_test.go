package loadgen

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// TestRingPackets: the ring holds a cell at loadRingRate, unless the cap
// or half the available memory is less; never less than loadRingMin.
func TestRingPackets(t *testing.T) {
	quick := loadWarmup + 2*time.Second + loadRingSlack
	for _, tc := range []struct {
		name   string
		dur    time.Duration
		avail  uint64
		want   int
		capped bool
	}{
		{"quick", 2 * time.Second, 0, int(quick.Seconds() * loadRingRate), false},
		{"quick, memory plenty", 2 * time.Second, 64 << 30, int(quick.Seconds() * loadRingRate), false},
		{"long: the cap", 10 * time.Second, 64 << 30, int(loadRingCap / ringSlot), true},
		{"little memory: half of it", 2 * time.Second, 1 << 30, int((1 << 29) / ringSlot), true},
		{"almost none: the minimum", 2 * time.Second, 1 << 20, loadRingMin, true},
	} {
		n, capped := ringPackets(tc.dur, tc.avail)
		if n != tc.want || capped != tc.capped {
			t.Errorf("%s: %d, %v; want %d, %v", tc.name, n, capped, tc.want, tc.capped)
		}
		if uint64(n)*ringSlot > loadRingCap && n > loadRingMin {
			t.Errorf("%s: %d datagrams are over the cap", tc.name, n)
		}
	}
	if ringSlot != 1316 {
		t.Errorf("ring slot %d bytes", ringSlot)
	}
}

// TestSealedRingMem seals a ring longer than the tunnel's replay window
// under a real handshake with each engine in memory, sends all of it and
// then some (sealed on the fly), and checks: the counters are the
// session's, consecutive from the first; a keepalive asked for while the
// ring is in use takes no counter (one that did would move the tunnel's
// replay window past the ring, and the tunnel would drop most of it);
// every datagram reaches the TUN as the inbound packet; the on-the-fly
// ones are counted; keepalives go on after the ring is released.
func TestSealedRingMem(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
	const n = 3 * noise.ReplayWindowSize
	ring, err := newSealedRing(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ring.close(); err != nil {
			t.Error(err)
		}
	})
	for _, engine := range []stages.Engine{stages.EngineSequential, stages.EnginePipeline} {
		t.Run(string(engine), func(t *testing.T) {
			m := newMemLoad(t, engine)
			p := m.peer
			if err := p.handshake(t.Context(), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			kp := p.kp.Load()
			defer p.releaseRing()
			if err := p.presealInbound(ring); err != nil {
				t.Fatal(err)
			}
			if ring.kp != kp || ring.first+n != kp.SendCount() || ring.sealTook <= 0 {
				t.Fatalf("ring: kp %p (want %p), first %d, %d sealed; send count %d; took %v", ring.kp, kp, ring.first, n, kp.SendCount(), ring.sealTook)
			}
			for i := range ring.pkts {
				b := ring.pkts[i].Message()
				h, err := wire.ParseTransportHeader(b)
				if err != nil || len(b) != loadMessageSize || h.Receiver != kp.RemoteIndex || h.Counter != ring.first+uint64(i) {
					t.Fatalf("slot %d: %d bytes, header %+v, %v; want counter %d", i, len(b), h, err, ring.first+uint64(i))
				}
			}
			if err := p.keepalive(); err != nil || kp.SendCount() != ring.first+n {
				t.Fatalf("a keepalive while the ring is in use: %v, send count %d, want %d", err, kp.SendCount(), ring.first+n)
			}

			const extra = 300 // beyond the ring: sealed on the fly
			msgs := make([]tunio.Datagram, p.conn.BatchSize())
			sent := 0
			for sent < n+extra {
				batch := msgs[:min(len(msgs), n+extra-sent)]
				ring.fill(batch)
				if err := p.conn.WriteBatch(batch); err != nil {
					t.Fatal(err)
				}
				sent += len(batch)
			}
			waitCount(t, "ring datagrams written to the TUN", n+extra, m.dev.Written)
			if w := m.wrong.Load(); w != 0 {
				t.Errorf("%d TUN writes were not the inbound packet", w)
			}
			if live := ring.live.Load(); live != extra {
				t.Errorf("%d sealed on the fly, want %d", live, extra)
			}
			if msg := ring.check(time.Now()); msg != "" {
				t.Errorf("check: %s", msg)
			}
			p.releaseRing()
			before := kp.SendCount()
			if err := p.keepalive(); err != nil || kp.SendCount() != before+1 {
				t.Errorf("keepalive after the ring: %v, send count %d, want %d", err, kp.SendCount(), before+1)
			}
		})
	}
}

// TestSealedRingCheck: the ring's session must last its cell: a session
// the harness replaced, a handshake the tunnel started, and a session past
// Rekey-After-Time are each reported.
func TestSealedRingCheck(t *testing.T) {
	var key [32]byte
	now := time.Now()
	kp := noise.NewKeypair(&key, &key, 1, 2, true, now.Add(-time.Minute))
	p := &loadPeer{}
	p.kp.Store(kp)
	r := &sealedRing{peer: p, kp: kp}
	if msg := r.check(now); msg != "" {
		t.Errorf("a fresh session: %q", msg)
	}
	if msg := r.check(now.Add(noise.RekeyAfterTime)); !strings.Contains(msg, "past Rekey-After-Time") {
		t.Errorf("an old session: %q", msg)
	}
	p.answered.Add(1)
	if msg := r.check(now); !strings.Contains(msg, "the tunnel started 1 handshake(s)") {
		t.Errorf("a handshake from the tunnel: %q", msg)
	}
	p.kp.Store(noise.NewKeypair(&key, &key, 3, 4, true, now))
	if msg := r.check(now); !strings.Contains(msg, "session changed") {
		t.Errorf("a new session: %q", msg)
	}
}

// TestCachedFor: the reader calls through at most once per interval, and
// returns the last value in between; an error is passed on and not kept.
func TestCachedFor(t *testing.T) {
	clock := time.Unix(1000, 0)
	calls := uint64(0)
	var fail error
	r := cachedFor(10*time.Millisecond, func() time.Time { return clock }, func() (uint64, error) {
		calls++
		return calls * 100, fail
	})
	check := func(want uint64, wantCalls uint64) {
		t.Helper()
		if v, err := r(); v != want || err != nil || calls != wantCalls {
			t.Errorf("%d, %v after %d calls; want %d after %d", v, err, calls, want, wantCalls)
		}
	}
	check(100, 1)
	clock = clock.Add(9 * time.Millisecond)
	check(100, 1)
	clock = clock.Add(time.Millisecond)
	check(200, 2)
	clock = clock.Add(20 * time.Millisecond)
	fail = errLoadHandshake
	if _, err := r(); err != errLoadHandshake {
		t.Errorf("error %v", err)
	}
	fail = nil
	check(400, 4) // the failed read was not kept
}

// TestSealInboundOrder: the ring's datagrams and the ones sealed on the
// fly after it carry one rising run of counters, as the tunnel's replay
// window needs.
func TestSealInboundOrder(t *testing.T) {
	var key [32]byte
	kp := noise.NewKeypair(&key, &key, 1, 2, true, time.Now())
	p := &loadPeer{batch: make([]wire.Packet, 16)}
	p.kp.Store(kp)
	if err := p.inbound.SetInner(udp4Packet(memLoadInnerB, loadSink, loadInnerSize)); err != nil {
		t.Fatal(err)
	}
	kp.ReserveCounter() // what the readiness check used
	ring, err := newSealedRing(100)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.close()
	if err := p.presealInbound(ring); err != nil {
		t.Fatal(err)
	}
	defer p.releaseRing()
	msgs := make([]tunio.Datagram, 16)
	want := uint64(1)
	for range 8 { // 128: the ring's 100, then 28 on the fly
		ring.fill(msgs)
		for _, d := range msgs {
			if c := binary.LittleEndian.Uint64(d.Buf[8:16]); c != want || d.N != loadMessageSize {
				t.Fatalf("counter %d (%d bytes), want %d", c, d.N, want)
			}
			want++
		}
	}
	if ring.live.Load() != 28 {
		t.Errorf("%d sealed on the fly, want 28", ring.live.Load())
	}
}
