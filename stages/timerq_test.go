package stages

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"pipeguard/internal/cputime"
	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// TestTimerQueueAgainstMap: random deadlines set, moved and cleared on
// many peers; after each step the queue's earliest entry and what it
// pops as due must be what a scan of a plain map says.
func TestTimerQueueAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1_000_000, 0)
	peers := make([]*peer, 500)
	for i := range peers {
		peers[i] = &peer{}
	}
	var q timerQueue
	want := map[*peer]time.Time{}
	now := t0
	for step := range 5000 {
		for range r.IntN(20) {
			p := peers[r.IntN(len(peers))]
			if r.IntN(4) == 0 {
				q.set(p, time.Time{})
				delete(want, p)
				continue
			}
			at := now.Add(time.Duration(r.IntN(10_000)) * time.Millisecond)
			q.set(p, at)
			want[p] = at
		}
		if q.len() != len(want) {
			t.Fatalf("step %d: %d in the queue, want %d", step, q.len(), len(want))
		}
		if e, ok := q.next(); ok {
			for _, at := range want {
				if at.Before(e.at) {
					t.Fatalf("step %d: earliest is %v, but %v is in the queue", step, e.at, at)
				}
			}
		}
		now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		var wantDue []*peer
		for p, at := range want {
			if !at.After(now) {
				wantDue = append(wantDue, p)
				delete(want, p)
			}
		}
		gotDue := q.popDue(now, nil)
		byAddr := func(a, b *peer) int { return int(a.id) - int(b.id) }
		for i, p := range peers {
			p.id = noise.PeerID(i) // a stable order to compare in
		}
		slices.SortFunc(gotDue, byAddr)
		slices.SortFunc(wantDue, byAddr)
		if !slices.Equal(gotDue, wantDue) {
			t.Fatalf("step %d: popped %d due, want %d", step, len(gotDue), len(wantDue))
		}
	}
}

// timerModel is one way of driving many sessions' timers: the actor's
// queue and wake list ("queue"), or the scan of every session the actor
// did before ("scan"). Both are run on their own copies of the same
// sessions with the same events; they must tick the same sessions at the
// same times with the same results.
type timerModel struct {
	peers []*peer
	queue timerQueue
	wakes wakeList
	scan  bool
	work  int // sessions read or ticked, summed over the rounds
}

func newTimerModel(n int, scan bool) *timerModel {
	m := &timerModel{scan: scan}
	for i := range n {
		p := &peer{id: noise.PeerID(i), session: &noise.Session{}}
		p.session.Jitter = func() time.Duration { return time.Duration(i%7) * 50 * time.Millisecond }
		if !scan {
			p.session.Wake = func() { m.wakes.add(p) }
		}
		m.peers = append(m.peers, p)
	}
	return m
}

type tickResult struct {
	peer    int
	actions noise.Actions
}

// round runs the timers due at now and returns what each ticked session
// asked for, by peer.
func (m *timerModel) round(now time.Time) []tickResult {
	var out []tickResult
	tick := func(p *peer) {
		// The queue may tick a session whose deadline moved later since
		// it was queued (nothing tells the actor of a later deadline):
		// such a tick finds nothing due and does nothing.
		if a, _ := p.session.Tick(now); a != 0 {
			out = append(out, tickResult{int(p.id), a})
		}
	}
	if m.scan {
		for _, p := range m.peers {
			m.work++
			if d := p.session.NextDeadline(); !d.IsZero() && !d.After(now) {
				tick(p)
			}
		}
	} else {
		for _, p := range m.wakes.take(nil) {
			m.work++
			m.queue.set(p, p.session.NextDeadline())
		}
		for _, p := range m.queue.popDue(now, nil) {
			m.work++
			tick(p)
			m.queue.set(p, p.session.NextDeadline())
		}
	}
	slices.SortFunc(out, func(a, b tickResult) int { return a.peer - b.peer })
	return out
}

// event applies one protocol event, chosen by kind, to session s.
func event(s *noise.Session, kind int, now time.Time) {
	switch kind {
	case 0:
		s.SetPersistentKeepalive(25*time.Second, now)
	case 1:
		s.SetPersistentKeepalive(0, now)
	case 2:
		s.RequestHandshake(now)
	case 3:
		s.InitiationSent(now)
	case 4:
		s.HandshakeReceived(now)
	case 5:
		s.TransportSent(now, true)
	case 6:
		s.TransportReceived(nil, now, true)
	case 7:
		s.TransportReceived(nil, now, false)
	}
}

// TestTimerQueueMatchesScan runs 3,000 sessions through an hour of
// protocol time on a fake clock, with random events, under the actor's
// queue and under the scan it replaced: both must tick the same sessions
// with the same results at every step. The queue must also look at far
// fewer sessions than the scan's 3,000 a round.
func TestTimerQueueMatchesScan(t *testing.T) {
	const n = 3000
	r := rand.New(rand.NewPCG(3, 4))
	queue, scan := newTimerModel(n, false), newTimerModel(n, true)
	now := time.Unix(2_000_000, 0)
	rounds := 0
	for end := now.Add(time.Hour); now.Before(end); rounds++ {
		for range r.IntN(30) {
			i, kind := r.IntN(n), r.IntN(8)
			if i%3 == 0 { // a third of the peers stay idle for good
				continue
			}
			event(queue.peers[i].session, kind, now)
			event(scan.peers[i].session, kind, now)
		}
		now = now.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
		got, want := queue.round(now), scan.round(now)
		if !slices.Equal(got, want) {
			t.Fatalf("at %v: the queue ticked %v, the scan %v", now, got, want)
		}
	}
	t.Logf("%d rounds: the queue read or ticked %d sessions, the scan %d", rounds, queue.work, scan.work)
	if queue.work*10 > scan.work {
		t.Fatalf("the queue did %d session reads, more than a tenth of the scan's %d", queue.work, scan.work)
	}
}

// timerBench is a tunnel of n peers, not started, whose sessions all
// have a keypair and an endpoint, so that a keepalive is a real seal and
// send; and a timer actor driven by hand on a fake time.
type timerBench struct {
	tun *Tunnel
	a   *timerActor
	now time.Time
}

func newTimerBench(b *testing.B, n int, keepalive time.Duration) *timerBench {
	net := memudp.NewNetwork()
	conn, err := net.Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		b.Fatal(err)
	}
	sink, err := net.Listen(netip.MustParseAddrPort("192.0.2.2:51820"))
	if err != nil {
		b.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		b.Fatal(err)
	}
	clk := fakeClock()
	tun, err := New(Config{PrivateKey: mustKey(b)}, dev, conn, clk, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close(); conn.Close(); sink.Close() })
	r := rand.New(rand.NewPCG(5, 6))
	err = tun.Configure(func(bt *Batch) error {
		for range n {
			var pk noise.PublicKey
			for j := range pk {
				pk[j] = byte(r.Uint32())
			}
			if err := bt.AddPeer(PeerConfig{PublicKey: pk, Endpoint: sink.LocalAddr(), PersistentKeepalive: keepalive}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	now := clk.Now()
	var key [32]byte
	for ref := range tun.peers.Load().all() {
		kp := noise.NewKeypair(&key, &key, r.Uint32(), r.Uint32(), true, now)
		ref.p.session.Install(kp, now)
		ref.p.session.TransportReceived(kp, now, false)
	}
	tb := &timerBench{tun: tun, a: newTimerActor(tun, &stageCounters{}, testLog(b)), now: now}
	tb.a.rebuild()
	// Spread the keepalives over their interval, as peers that came up
	// at different times are, and let the first round of them go.
	for ref := range tun.peers.Load().all() {
		if keepalive > 0 {
			ref.p.session.TransportSent(now.Add(-time.Duration(r.Int64N(int64(keepalive)))), false)
		}
	}
	tb.tick(keepalive + time.Second)
	go func() { // the keepalives land here; nobody reads them otherwise
		msgs := make([]tunio.Datagram, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, 2048)
		}
		for {
			if _, err := sink.ReadBatch(msgs); err != nil {
				return
			}
		}
	}()
	return tb
}

// tick moves the fake time on by d, a second at a time, running the
// actor at each second as it would wake.
func (tb *timerBench) tick(d time.Duration) {
	for ; d > 0; d -= time.Second {
		tb.now = tb.now.Add(time.Second)
		tb.a.tick(tb.now)
	}
}

// BenchmarkTimers is the timer actor's cost for one second of protocol
// time with n peers: "idle" peers have no timer armed (100,000 of them
// must cost about nothing); "keepalive" peers have a session and a
// persistent keepalive of 25 s, so n/25 keepalives a second are sealed
// and sent. cpu-ns/op divided by 10^7 is the share of a core in percent.
func BenchmarkTimers(b *testing.B) {
	for _, tc := range []struct {
		name      string
		n         int
		keepalive time.Duration
	}{
		{"idle", 100_000, 0},
		{"keepalive", 1_000, 25 * time.Second},
		{"keepalive", 50_000, 25 * time.Second},
	} {
		b.Run(fmt.Sprintf("%s/%d", tc.name, tc.n), func(b *testing.B) {
			tb := newTimerBench(b, tc.n, tc.keepalive)
			sent := tb.a.c.keepalives.Load()
			b.ResetTimer()
			cpu := cputime.Start()
			tb.tick(time.Duration(b.N) * time.Second)
			cpu.Report(b)
			b.ReportMetric(float64(tb.a.c.keepalives.Load()-sent)/float64(b.N), "keepalives/op")
		})
	}
}

// TestInitiationBudget: 2,000 peers with a persistent keepalive and no
// session (away) ask for far more initiations than the budget allows;
// over 30 s of protocol time the timer actor sends at most the budget's
// worth and defers the rest. A peer with a packet waiting gets its
// initiation even with the budget spent.
func TestInitiationBudget(t *testing.T) {
	net := memudp.NewNetwork()
	conn, err := net.Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatal(err)
	}
	sink, err := net.Listen(netip.MustParseAddrPort("192.0.2.2:51820"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	defer conn.Close()
	clk := fakeClock()
	tun, err := New(Config{PrivateKey: mustKey(t)}, dev, conn, clk, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	pcs := peerConfigs(2_000, 3)
	for i := range pcs {
		pcs[i].Endpoint, pcs[i].PersistentKeepalive = sink.LocalAddr(), 25*time.Second
	}
	if err := tun.Configure(func(b *Batch) error {
		for _, pc := range pcs {
			if err := b.AddPeer(pc); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	initiations := make(chan int, 1)
	go func() { // counts the initiations that reach the peers' address
		msgs := make([]tunio.Datagram, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, 2048)
		}
		n := 0
		for {
			k, err := sink.ReadBatch(msgs)
			if err != nil {
				initiations <- n
				return
			}
			for _, m := range msgs[:k] {
				if m.N == wire.InitiationSize {
					n++
				}
			}
		}
	}()
	a := newTimerActor(tun, &stageCounters{}, testLog(t))
	a.rebuild()
	now := clk.Now()
	const seconds = 30
	for range seconds {
		a.tick(now)
		now = now.Add(time.Second)
	}
	deferred := tun.HandshakeStats().InitiationsDeferred
	if deferred < 1_000 {
		t.Errorf("%d initiations deferred, want most of the peers' thousands", deferred)
	}
	// A packet waits for one peer: its initiation goes out, budget or not.
	p := firstPeer(tun)
	var pkt wire.Packet
	if queued, _ := p.stageUnlessReady(&pkt, func() bool { return false }); !queued {
		t.Fatal("the packet was not staged")
	}
	p.hs.Clear(&tun.index)
	now = now.Add(10 * time.Second) // past the per-peer limit of one per RekeyTimeout
	p.session.RequestHandshake(now)
	a.tick(now)
	if got := p.hs.State(); got != noise.HandshakeInitiationCreated {
		t.Errorf("a peer with a packet waiting is in handshake state %v, want an initiation made", got)
	}
	sink.Close()
	sent := <-initiations
	if limit := initiationBurst + initiationRate*(seconds+10) + 1; sent > limit {
		t.Errorf("%d initiations sent in %d s, more than the budget's %d", sent, seconds+10, limit)
	}
	t.Logf("%d initiations sent, %d deferred", sent, deferred)
}
