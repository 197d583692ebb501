package stages

import (
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// floodInitiations returns n handshake initiations to the tunnel whose
// public key is to: random bytes, but each with a valid MAC1, so they
// pass the cheap check and, unless the tunnel is under load, cost it a
// Curve25519 operation each before they fail to authenticate.
func floodInitiations(t testing.TB, to noise.PublicKey, n int) [][]byte {
	t.Helper()
	var g noise.CookieGenerator
	g.Init(to)
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, wire.InitiationSize)
		rand.Read(b)
		b[0], b[1], b[2], b[3] = byte(wire.TypeInitiation), 0, 0, 0
		g.AddMACs(b, time.Now()) // no cookie: MAC2 is zero
		out[i] = b
	}
	return out
}

// handshakesProcessed is how many messages the handshake workers finished
// with: answered (or consumed), or dropped.
func handshakesProcessed(t testing.TB, e *end) uint64 {
	hs := stageStats(t, e.tun.Stats(), "handshake")
	return hs.Packets + hs.TotalDrops()
}

// TestUnderLoadLastsOneSecond: once the handshake queue was a quarter
// full, the tunnel stays under load for a second of protocol time, as
// wireguard-go does: every message of a burst gets a cookie reply, also
// after the queue has drained below the threshold, and so does a lone
// initiation between two bursts; a peer that comes back with the cookie
// is answered; a second later the tunnel is no longer under load.
func TestUnderLoadLastsOneSecond(t *testing.T) {
	const burst = HandshakeQueueCapacity/4 + 40
	clk := fakeClock()
	net := memudp.NewNetworkConfig(blocking)
	leakCheck(t)
	gateAddr := netip.MustParseAddrPort("203.0.113.8:1000")
	c, cpc := newRawPeer(t, net, gateAddr, host{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("fd00::3")})
	f, _ := newRawPeer(t, net, netip.MustParseAddrPort("203.0.113.9:2000"), host{netip.MustParseAddr("10.9.0.9"), netip.MustParseAddr("fd09::9")})
	var gate *gatedConn
	e, p := withRawPeerOn(t, net, tunnelSpec{clock: clk, hsWorkers: 1, wrapUDP: func(conn *memudp.Conn) tunio.UDPConn {
		gate = &gatedConn{Conn: conn, to: gateAddr, waiting: make(chan struct{}), open: make(chan struct{})}
		return gate
	}}, cpc)
	defer gate.release()
	c.attach(e)
	f.attach(e) // f is no peer of the tunnel: it only floods

	// Hold the actor at the gate (its response to c), fill its queue past
	// the threshold with a burst, then let it go.
	var ini wire.Initiation
	if err := c.hs.CreateInitiation(time.Now(), &c.index, &ini); err != nil {
		t.Fatal(err)
	}
	var b [wire.InitiationSize]byte
	ini.Marshal(&b)
	c.send(b[:])
	select {
	case <-gate.waiting:
	case <-time.After(5 * time.Second):
		t.Fatalf("the handshake workers did not answer\n%s", fmtStats(e.tun.Stats()))
	}
	f.send(floodInitiations(t, e.key.Public(), burst)...)
	waitFor(t, 5*time.Second, func() bool { return stageStats(t, e.tun.Stats(), "handshake").QueueDepth == burst },
		func() string { return "the burst did not reach the handshake queue\n" + fmtStats(e.tun.Stats()) })
	gate.release()
	c.recvType(wire.TypeResponse, 5*time.Second)
	waitFor(t, 5*time.Second, func() bool { return handshakesProcessed(t, e) == burst+1 },
		func() string { return "the burst was not processed\n" + fmtStats(e.tun.Stats()) })
	for i := range burst {
		d := f.recv(time.Second)
		if typ, _ := wire.PeekType(d.b); typ != wire.TypeCookieReply {
			t.Fatalf("burst message %d: answered with type %d, want a cookie reply", i, typ)
		}
	}
	if n := dropsOf(e.tun.Stats(), DropHandshake); n != 0 {
		t.Fatalf("%d burst messages were worked on (handshake_invalid) instead of answered with a cookie\n%s", n, fmtStats(e.tun.Stats()))
	}

	// Between bursts, the queue empty, the protocol clock unchanged: a
	// genuine peer without a cookie gets one, and with it, its response.
	var pi wire.Initiation
	if err := p.hs.CreateInitiation(time.Now(), &p.index, &pi); err != nil {
		t.Fatal(err)
	}
	pi.Marshal(&b)
	p.send(b[:])
	cr := p.recvType(wire.TypeCookieReply, 5*time.Second)
	if _, err := noise.ConsumeCookieReply(cr.b, time.Now(), &p.index); err != nil {
		t.Fatalf("the tunnel's cookie reply: %v", err)
	}
	p.initiate() // now with MAC2

	// A second later the load is over: a flood message is worked on again.
	advance(e, clk, underLoadAfterTime)
	f.send(floodInitiations(t, e.key.Public(), 1)...)
	waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropHandshake) == 1 },
		func() string { return "the message after the load was not worked on\n" + fmtStats(e.tun.Stats()) })
	f.expectNothing(20 * time.Millisecond)
}

// TestHandshakeWorkBudget: a flood that never fills the handshake queue
// (it comes a few messages at a time, each group handled before the
// next) still cannot buy more than the work budget's burst of Curve25519
// operations in an instant of protocol time: then the tunnel is under
// load and answers with cookies. Once the budget has refilled and the
// load window passed, messages are worked on again.
func TestHandshakeWorkBudget(t *testing.T) {
	const (
		group = 8 // far below the queue's under-load threshold
		burst = 128
		sent  = burst + 5*group
	)
	clk := fakeClock()
	net := memudp.NewNetworkConfig(blocking)
	leakCheck(t)
	f, _ := newRawPeer(t, net, netip.MustParseAddrPort("203.0.113.9:2000"), host{netip.MustParseAddr("10.9.0.9"), netip.MustParseAddr("fd09::9")})
	// One worker: of two that find the last tokens at once, one would
	// drop its message (throttled) rather than answer it with a cookie.
	e, _ := withRawPeerOn(t, net, tunnelSpec{clock: clk, hsWorkers: 1, hsBudget: testBudget(500, burst)})
	f.attach(e)
	flood := floodInitiations(t, e.key.Public(), sent+group)
	for i := 0; i < sent; i += group {
		f.send(flood[i : i+group]...)
		waitFor(t, 5*time.Second, func() bool { return handshakesProcessed(t, e) == uint64(i+group) },
			func() string { return "a group was not processed\n" + fmtStats(e.tun.Stats()) })
	}
	hs := e.tun.HandshakeStats()
	if hs.Worked != burst || hs.CookieReplies != sent-burst {
		t.Fatalf("of %d initiations, %d cost Curve25519 work and %d got cookie replies; want %d and %d",
			sent, hs.Worked, hs.CookieReplies, burst, sent-burst)
	}
	for range sent - burst {
		f.recvType(wire.TypeCookieReply, 5*time.Second)
	}

	advance(e, clk, underLoadAfterTime)
	f.send(flood[sent:]...)
	waitFor(t, 5*time.Second, func() bool { return handshakesProcessed(t, e) == sent+group },
		func() string { return "the last group was not processed\n" + fmtStats(e.tun.Stats()) })
	if hs := e.tun.HandshakeStats(); hs.Worked != burst+group {
		t.Fatalf("after the budget refilled, %d more were worked on, want %d", hs.Worked-burst, group)
	}
	f.expectNothing(20 * time.Millisecond)
}

// testBudget is a handshake budget of rate initiations a second, burst at
// once.
func testBudget(rate, burst float64) HandshakeBudget {
	return HandshakeBudget{PerSecond: rate * noise.DHPerInitiation, Burst: burst * noise.DHPerInitiation}
}
