package stages

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/wire"
)

// transferOf is the peer pk's transfer counters as `wg show transfer`
// prints them, and their handshake part.
func transferOf(t *testing.T, e *end, pk noise.PublicKey) (rx, tx, rxHS, txHS uint64) {
	t.Helper()
	st, ok := e.tun.Peer(pk)
	if !ok {
		t.Fatalf("no peer %s", pk)
	}
	return st.RxBytes, st.TxBytes, st.RxHandshakeBytes, st.TxHandshakeBytes
}

// TestTransferCountsEveryDatagram: a peer's transfer counters count the
// UDP payload of every datagram to and from it, as the kernel does:
// initiations and responses (sent only once they went out), keepalives
// and data, on both engines; and no cookie reply, in either direction,
// since the kernel counts none (one it sends answers an unauthenticated
// sender, one it receives is not counted either), nor a data packet
// dropped for its inner source.
func TestTransferCountsEveryDatagram(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			clk := fakeClock()
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, clock: clk})
			pk := p.key.Public()
			want := func(rx, tx, rxHS, txHS uint64) {
				t.Helper()
				waitFor(t, 5*time.Second, func() bool {
					a, b, c, d := transferOf(t, e, pk)
					return a == rx && b == tx && c == rxHS && d == txHS
				}, func() string {
					a, b, c, d := transferOf(t, e, pk)
					return fmt.Sprintf("transfer rx %d tx %d (handshake %d, %d), want %d %d (%d, %d)\n%s", a, b, c, d, rx, tx, rxHS, txHS, fmtStats(e.tun.Stats()))
				})
			}

			// A packet for the peer makes the tunnel initiate.
			out := ipv4(hostA.v4, hostB.v4, 84, 1)
			e.inject(t, out)
			ini := p.recvType(wire.TypeInitiation, 5*time.Second)
			want(0, wire.InitiationSize, 0, wire.InitiationSize)

			// The peer asks for a cookie: the tunnel takes it (no drop),
			// counts nothing, and its retry carries MAC2.
			var msg wire.Initiation
			if err := msg.Unmarshal(ini.b); err != nil {
				t.Fatal(err)
			}
			var sb [18]byte
			reply := noise.NewCookieChecker(p.static).CreateReply(ini.b, msg.Sender, srcBytes(ini.from, &sb), time.Now())
			var rb [wire.CookieReplySize]byte
			reply.Marshal(&rb)
			p.send(rb[:])
			waitFor(t, 5*time.Second, func() bool { return handshakesProcessed(t, e) == 1 },
				func() string { return "cookie reply not taken\n" + fmtStats(e.tun.Stats()) })
			if n := dropsOf(e.tun.Stats(), DropHandshake); n != 0 {
				t.Fatalf("cookie reply dropped\n%s", fmtStats(e.tun.Stats()))
			}
			want(0, wire.InitiationSize, 0, wire.InitiationSize)
			advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)

			// The retry is answered; the waiting packet goes out sealed
			// (84 bytes padded to 96, and 32 of header and tag).
			p.respond()
			got, _ := p.recvData(5 * time.Second)
			if seqOf(got) != 1 {
				t.Fatalf("waiting packet: seq %d", seqOf(got))
			}
			const dataLen = 96 + wire.MinTransportSize
			want(wire.ResponseSize, 2*wire.InitiationSize+dataLen, wire.ResponseSize, 2*wire.InitiationSize)

			// The peer sends a keepalive and a packet of its own.
			p.send(p.seal(nil), p.seal(ipv4(hostB.v4, hostA.v4, 84, 2)))
			if got := e.recv(t, 5*time.Second); seqOf(got) != 2 {
				t.Fatalf("peer's packet: seq %d", seqOf(got))
			}
			want(wire.ResponseSize+wire.MinTransportSize+dataLen, 2*wire.InitiationSize+dataLen, wire.ResponseSize, 2*wire.InitiationSize)

			// A packet from a source outside the peer's allowed IPs is
			// dropped and, as in the kernel, not counted.
			p.send(p.seal(ipv4(netip.MustParseAddr("10.99.0.9"), hostA.v4, 84, 3)))
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropNotAllowed) == 1 },
				func() string { return "packet from a disallowed source not dropped\n" + fmtStats(e.tun.Stats()) })
			want(wire.ResponseSize+wire.MinTransportSize+dataLen, 2*wire.InitiationSize+dataLen, wire.ResponseSize, 2*wire.InitiationSize)

			// The tunnel as responder: an initiation and its response.
			advance(e, clk, time.Second) // past the flood limit on initiations
			p.initiate()
			want(wire.ResponseSize+wire.InitiationSize+2*wire.MinTransportSize+dataLen, 2*wire.InitiationSize+wire.ResponseSize+dataLen,
				wire.ResponseSize+wire.InitiationSize, 2*wire.InitiationSize+wire.ResponseSize)
		})
	}
}

// TestTransferMatchesKernel is the kernel selftest's count: after one
// handshake and 10 pings of 84-byte packets, the side that pings (and
// so initiates) has received a 92-byte response and ten 128-byte
// replies (1372 bytes) and sent a 148-byte initiation and ten 128-byte
// requests (1428, or 1460 when a 32-byte keepalive went out too); the
// other side shows the mirror image.
func TestTransferMatchesKernel(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			a, b := newPair(t, pairOpts{engine: engine, workers: 2})
			for seq := range uint32(10) {
				req := ipv4(a.addr, b.addr, 84, seq)
				a.inject(t, req)
				if got := b.recv(t, 5*time.Second); seqOf(got) != seq {
					t.Fatalf("request %d arrived as %d", seq, seqOf(got))
				}
				b.inject(t, ipv4(b.addr, a.addr, 84, seq))
				if got := a.recv(t, 5*time.Second); seqOf(got) != seq {
					t.Fatalf("reply %d arrived as %d", seq, seqOf(got))
				}
			}
			check := func(e *end, peer *end, wantRx uint64, wantTx ...uint64) {
				t.Helper()
				var rx, tx uint64
				ok := func() bool {
					rx, tx, _, _ = transferOf(t, e, peer.key.Public())
					return rx == wantRx && (tx == wantTx[0] || tx == wantTx[1])
				}
				waitFor(t, 5*time.Second, ok, func() string {
					return fmt.Sprintf("rx %d tx %d, want %d and %v", rx, tx, wantRx, wantTx)
				})
			}
			check(a, b, 1372, 1428, 1460)
			// b's receive side is a's send side: what a sent, keepalive
			// or not.
			_, aTx, _, _ := transferOf(t, a, b.key.Public())
			check(b, a, aTx, 1372, 1372+wire.MinTransportSize)
		})
	}
}
