package stages

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/supervisor/clock"
	"pipeguard/wire"
)

// advance moves the fake clock by d and nudges e's timer actor, so that
// it runs for the new time even if it was busy when the clock moved (it
// would then sleep from the old time and wake late); whatever is due is
// then sent promptly.
func advance(e *end, clk *clock.Fake, d time.Duration) {
	clk.Advance(d)
	// If that fired the actor's timer, let it tick and go back to sleep
	// (it re-arms the timer after everything the tick did).
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = clk.WaitTimers(ctx, 1)
	cancel()
	e.tun.wake() // read by the actor after this, then it reads the clock
}

// TestReplayCheckedAfterAuthentication: a replayed datagram is dropped
// and counted as a replay, also when it arrives in the same batch as the
// original (so two workers open both in parallel); and a forged datagram
// with a counter far ahead fails authentication without moving the replay
// window, which would otherwise reject every genuine packet after it.
func TestReplayCheckedAfterAuthentication(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 4})
			ka := p.initiate() // counter 0
			var pkts [][]byte
			var dgrams [][]byte
			for seq := range uint32(4) {
				pkts = append(pkts, ipv4(hostB.v4, hostA.v4, 60+int(seq), seq))
				dgrams = append(dgrams, p.seal(pkts[seq])) // counters 1..4
			}
			forged := p.forged(1<<40, 64)
			p.send(forged, dgrams[0], dgrams[0], dgrams[1], ka, dgrams[0], dgrams[2], dgrams[1], dgrams[3], dgrams[3])
			for i, want := range pkts {
				if got := e.recv(t, 5*time.Second); !bytes.Equal(got, want) {
					t.Fatalf("packet %d on the TUN: got seq %d (%d bytes), want seq %d", i, seqOf(got), len(got), seqOf(want))
				}
			}
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropReplay) >= 5 },
				func() string { return "replays not counted\n" + fmtStats(e.tun.Stats()) })
			e.expectNoPacket(t, 20*time.Millisecond)
			ss := e.tun.Stats()
			if r, a, all := dropsOf(ss, DropReplay), dropsOf(ss, DropAuth), totalDrops(ss); r != 5 || a != 1 || all != 6 {
				t.Errorf("drops: replay %d, auth %d, all %d; want 5, 1, 6\nstats:\n%s", r, a, all, fmtStats(ss))
			}
		})
	}
}

// TestSourceNotAllowedDropped: cryptokey routing inbound. A peer may send
// only from the inner addresses it is allowed; a packet from another
// peer's address, or from nobody's, is dropped and counted, IPv4 and IPv6
// alike, and the allowed packets around them arrive in order.
func TestSourceNotAllowedDropped(t *testing.T) {
	hostC := host{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("fd00::3")}
	other := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{
		netip.PrefixFrom(hostC.v4, 32), netip.PrefixFrom(hostC.v6, 128)}}
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2}, other)
			p.initiate()
			var buf [4][wire.MaxInnerSize]byte
			allowed4 := flowPacket(buf[0][:], hostB, hostA, 0)
			allowed6 := flowPacket(buf[1][:], hostB, hostA, 1)
			fromC6 := flowPacket(buf[2][:], hostC, hostA, 1)
			fromC4 := flowPacket(buf[3][:], hostC, hostA, 3)
			nobody := ipv4(netip.MustParseAddr("10.9.9.9"), hostA.v4, 100, 9)
			p.send(p.seal(allowed4), p.seal(fromC4), p.seal(nobody), p.seal(fromC6), p.seal(allowed6))
			for _, want := range [][]byte{allowed4, allowed6} {
				if got := e.recv(t, 5*time.Second); !bytes.Equal(got, want) {
					t.Fatalf("got %d bytes from %v, want %d bytes from %v", len(got), flowSrc(got), len(want), flowSrc(want))
				}
			}
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropNotAllowed) >= 3 },
				func() string { return "not counted\n" + fmtStats(e.tun.Stats()) })
			if ss := e.tun.Stats(); dropsOf(ss, DropNotAllowed) != 3 || totalDrops(ss) != 3 {
				t.Errorf("want exactly 3 drops, all source_not_allowed\nstats:\n%s", fmtStats(ss))
			}
		})
	}
}

// TestStagedUntilHandshake: packets for a peer without a session start a
// handshake and wait in the peer's queue; nothing is sent before the
// handshake completes, then the queue is flushed first and in order (the
// very first packet is not lost), and later packets follow it. Packets
// beyond the queue's capacity are dropped and counted.
func TestStagedUntilHandshake(t *testing.T) {
	const extra = 5
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 4})
			var buf [wire.MaxInnerSize]byte
			for seq := range uint32(StagedPerPeer + extra) {
				e.inject(t, flowPacket(buf[:], hostA, hostB, seq))
			}
			// All read and queued (the overflow counted) before we answer.
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropStagedOverflow) == extra },
				func() string { return "overflow not counted\n" + fmtStats(e.tun.Stats()) })
			p.respond() // the first datagram must be the initiation
			for seq := uint32(0); seq < StagedPerPeer; seq++ {
				got, _ := p.recvData(5 * time.Second)
				if want := flowPacket(buf[:], hostA, hostB, seq); !bytes.Equal(got, want) {
					t.Fatalf("staged packet %d: got seq %d (%d bytes), want seq %d (%d bytes)", seq, flowSeq(got), len(got), seq, len(want))
				}
			}
			next := uint32(StagedPerPeer + extra)
			e.inject(t, flowPacket(buf[:], hostA, hostB, next))
			if got, _ := p.recvData(5 * time.Second); flowSeq(got) != next {
				t.Fatalf("after the flush: got seq %d, want %d (the overflowed ones must stay lost)", flowSeq(got), next)
			}
			if ss := e.tun.Stats(); totalDrops(ss) != extra {
				t.Errorf("want exactly %d drops (staged_overflow)\nstats:\n%s", extra, fmtStats(ss))
			}
		})
	}
}

// TestStagedDroppedWhenHandshakeGivesUp: a peer that never answers gets
// an initiation every RekeyTimeout (plus jitter) until RekeyAttemptTime,
// then its waiting packets are dropped and counted.
func TestStagedDroppedWhenHandshakeGivesUp(t *testing.T) {
	const waiting = 10
	clk := fakeClock()
	e, p := withRawPeer(t, tunnelSpec{engine: EnginePipeline, workers: 2, clock: clk})
	for seq := range uint32(waiting) {
		e.inject(t, ipv4(hostA.v4, hostB.v4, 100, seq))
	}
	// Every packet that finds no session asks for a handshake, which
	// restarts the retry count: one routed after the first retry (the
	// tunnel's stages run in real time, the clock below jumps) would make
	// the tunnel try once more than counted. So all are staged first.
	waitFor(t, 5*time.Second, func() bool { return stagedPackets(e) == waiting },
		func() string { return fmt.Sprintf("%d packets staged, want %d", stagedPackets(e), waiting) })
	p.recvType(wire.TypeInitiation, 5*time.Second)
	for retry := 2; retry <= noise.MaxHandshakeAttempts; retry++ {
		advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
		p.recvType(wire.TypeInitiation, 5*time.Second)
		if d := dropsOf(e.tun.Stats(), DropHandshakeGiveUp); d != 0 {
			t.Fatalf("gave up after %d initiations, want %d", retry, noise.MaxHandshakeAttempts)
		}
	}
	advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
	waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropHandshakeGiveUp) > 0 },
		func() string { return "no give-up\n" + fmtStats(e.tun.Stats()) })
	p.expectNothing(10 * time.Millisecond)
	if ss := e.tun.Stats(); dropsOf(ss, DropHandshakeGiveUp) != waiting || totalDrops(ss) != waiting {
		t.Errorf("want exactly %d drops, all handshake_give_up\nstats:\n%s", waiting, fmtStats(ss))
	}
}

// stagedPackets is how many packets wait for a handshake, all peers of e
// together.
func stagedPackets(e *end) int {
	n := 0
	for r := range e.tun.peers.Load().all() {
		r.p.stagedMu.Lock()
		n += len(r.p.staged)
		r.p.stagedMu.Unlock()
	}
	return n
}

// TestKeepalive: a tunnel that received data and has sent nothing back
// for KeepaliveTimeout sends a keepalive, not before; one that answered
// with data sends none. A keepalive received is counted and writes nothing
// to the TUN.
func TestKeepalive(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			clk := fakeClock()
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, clock: clk})
			p.initiate()
			if k := keepalivesIn(e.tun.Stats()); k != 1 {
				t.Fatalf("keepalives received: %d, want 1", k)
			}
			e.expectNoPacket(t, 10*time.Millisecond)
			timerKeepalives := func() uint64 { return stageStats(t, e.tun.Stats(), "timers").Keepalives }

			p.send(p.seal(ipv4(hostB.v4, hostA.v4, 100, 1)))
			e.recv(t, 5*time.Second)
			advance(e, clk, noise.KeepaliveTimeout-time.Second)
			p.expectNothing(10 * time.Millisecond)
			advance(e, clk, time.Second)
			d := p.recvType(wire.TypeTransport, 5*time.Second)
			if inner, _ := p.open(d.b); inner != nil || len(d.b) != wire.MinTransportSize {
				t.Fatalf("got %d bytes carrying %d inner bytes, want a keepalive", len(d.b), len(inner))
			}
			// Counted after the send: wait for it.
			waitFor(t, 5*time.Second, func() bool { return timerKeepalives() == 1 },
				func() string { return "keepalive not counted\n" + fmtStats(e.tun.Stats()) })

			// Data answered with data: no keepalive.
			p.send(p.seal(ipv4(hostB.v4, hostA.v4, 100, 2)))
			e.recv(t, 5*time.Second)
			e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 3))
			p.recvData(5 * time.Second)
			advance(e, clk, noise.KeepaliveTimeout+time.Second)
			p.expectNothing(10 * time.Millisecond)
			if k := timerKeepalives(); k != 1 {
				t.Errorf("timers counted %d keepalives sent, want still 1", k)
			}
		})
	}
}

// TestPersistentKeepalive: a peer with a persistent keepalive gets a
// handshake at once (there is no session yet), a keepalive right after it,
// then one every interval of silence; traffic postpones it.
func TestPersistentKeepalive(t *testing.T) {
	const every = 25 * time.Second
	clk := fakeClock()
	leakCheck(t)
	e, p := withRawPeer(t, tunnelSpec{engine: EnginePipeline, workers: 2, clock: clk})
	// Re-add the peer with a persistent keepalive.
	pc := PeerConfig{PublicKey: p.key.Public(), Endpoint: p.conn.LocalAddr(), PersistentKeepalive: every,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(hostB.v4, 32)}}
	e.tun.RemovePeer(pc.PublicKey)
	if err := e.tun.AddPeer(pc); err != nil {
		t.Fatal(err)
	}
	p.respond()
	keepalive := func(what string) {
		t.Helper()
		d := p.recvType(wire.TypeTransport, 5*time.Second)
		if inner, _ := p.open(d.b); inner != nil {
			t.Fatalf("%s: got %d inner bytes, want a keepalive", what, len(inner))
		}
	}
	keepalive("after the handshake")
	for i := range 2 {
		advance(e, clk, every-time.Second)
		p.expectNothing(10 * time.Millisecond)
		advance(e, clk, time.Second)
		keepalive("interval " + string(rune('1'+i)))
	}
	// Traffic 10 s into the interval restarts it: the tunnel sends data
	// and the peer answers with a keepalive (data from the peer would arm
	// the ordinary keepalive instead, 10 s later).
	advance(e, clk, 10*time.Second)
	p.expectNothing(10 * time.Millisecond)
	e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1))
	p.recvData(5 * time.Second)
	p.send(p.seal(nil))
	waitFor(t, 5*time.Second, func() bool { return keepalivesIn(e.tun.Stats()) == 1 },
		func() string { return "keepalive not taken\n" + fmtStats(e.tun.Stats()) })
	advance(e, clk, every-time.Second)
	p.expectNothing(10 * time.Millisecond)
	advance(e, clk, time.Second)
	keepalive("after traffic")
	waitFor(t, 5*time.Second, func() bool { return stageStats(t, e.tun.Stats(), "timers").Keepalives == 4 },
		func() string { return "timers did not count 4 keepalives\n" + fmtStats(e.tun.Stats()) })
}

// TestEndpointRoaming: the tunnel sends to the source of the peer's
// latest authenticated packet. A forged packet or a replayed one from
// another address does not move it.
func TestEndpointRoaming(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2})
			ka := p.initiate()
			second := p.listen(netip.MustParseAddrPort("198.51.100.7:4242"))
			third := p.listen(netip.MustParseAddrPort("[2001:db8::9]:5353"))
			seq := uint32(0)
			expectAt := func(want netip.AddrPort, what string) {
				t.Helper()
				seq++
				e.inject(t, ipv4(hostA.v4, hostB.v4, 80, seq))
				got, on := p.recvData(5 * time.Second)
				if on != want || seqOf(got) != seq {
					t.Fatalf("%s: seq %d arrived at %s, want seq %d at %s", what, seqOf(got), on, seq, want)
				}
			}
			expectAt(p.conn.LocalAddr(), "before roaming")

			// An authenticated packet from the second address moves the endpoint.
			p.sendFrom(second, p.seal(ipv4(hostB.v4, hostA.v4, 80, 100)))
			e.recv(t, 5*time.Second)
			expectAt(second.LocalAddr(), "after a packet from the second address")

			// Forged, and replayed, from the third: no move.
			p.sendFrom(third, p.forged(1<<20, 48))
			p.sendFrom(third, ka)
			waitFor(t, 5*time.Second, func() bool {
				ss := e.tun.Stats()
				return dropsOf(ss, DropAuth) == 1 && dropsOf(ss, DropReplay) == 1
			}, func() string { return "forged and replayed not counted\n" + fmtStats(e.tun.Stats()) })
			expectAt(second.LocalAddr(), "after a forged and a replayed packet from the third address")

			// An authenticated one from the third (IPv6 outer) does move it.
			p.sendFrom(third, p.seal(ipv4(hostB.v4, hostA.v4, 80, 101)))
			e.recv(t, 5*time.Second)
			expectAt(third.LocalAddr(), "after a packet from the third address")
		})
	}
}

// TestExpiredSession: a keypair older than RejectAfterTime receives
// nothing (dropped and counted as key_expired) and sends nothing: a
// packet for the peer waits for a new handshake, which the tunnel starts,
// and is sent once it completes.
func TestExpiredSession(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			clk := fakeClock()
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, clock: clk})
			p.initiate()
			old := p.seal(ipv4(hostB.v4, hostA.v4, 100, 1))
			advance(e, clk, noise.RejectAfterTime)
			p.send(old)
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropKeyExpired) == 1 },
				func() string { return "not counted as key_expired\n" + fmtStats(e.tun.Stats()) })
			e.expectNoPacket(t, 10*time.Millisecond)

			want := ipv4(hostA.v4, hostB.v4, 200, 2)
			e.inject(t, want)
			p.respond() // the next datagram must be an initiation, not data
			if got, _ := p.recvData(5 * time.Second); !bytes.Equal(got, want) {
				t.Fatalf("after the new handshake: got seq %d, want the packet that waited", seqOf(got))
			}
			if ss := e.tun.Stats(); totalDrops(ss) != 1 {
				t.Errorf("want exactly 1 drop (key_expired)\n%s", fmtStats(ss))
			}
		})
	}
}
