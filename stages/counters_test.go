package stages

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// failingConn refuses to send once fail is set.
type failingConn struct {
	*memudp.Conn
	fail atomic.Bool
}

var errRefused = errors.New("test: send refused")

func (c *failingConn) WriteBatch(msgs []tunio.Datagram) error {
	if c.fail.Load() {
		return errRefused
	}
	return c.Conn.WriteBatch(msgs)
}

// TestDropCounters: each kind of bad input, inbound or outbound, is
// dropped and counted under exactly its reason, once, and nothing else is
// dropped; it never reaches the far side.
func TestDropCounters(t *testing.T) {
	noEndpoint := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}}
	junk := func(typ wire.MessageType, n int) []byte {
		b := make([]byte, n)
		b[0] = byte(typ)
		for i := 4; i < n; i++ {
			b[i] = byte(i)
		}
		return b
	}
	type env struct {
		e    *end
		p    *rawPeer
		conn *failingConn
	}
	cases := []struct {
		name   string
		reason DropReason
		dev    memtun.Config
		act    func(t *testing.T, x env)
	}{
		{"datagram shorter than a header", DropMalformed, memtun.Config{}, func(t *testing.T, x env) { x.p.send([]byte{4, 0, 0}) }},
		{"unknown message type", DropMalformed, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(9, 48)) }},
		{"reserved bytes set", DropMalformed, memtun.Config{}, func(t *testing.T, x env) {
			d := x.p.seal(ipv4(hostB.v4, hostA.v4, 40, 1))
			d[2] = 1
			x.p.send(d)
		}},
		{"transport message too short", DropMalformed, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(wire.TypeTransport, wire.MinTransportSize-1)) }},
		{"datagram longer than any message", DropMalformed, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(9, wire.MaxMessageSize+16)) }},
		{"transport message above the tunnel MTU", DropTooBig, memtun.Config{}, func(t *testing.T, x env) {
			x.p.send(x.p.forged(1, 1400)) // a peer with MTU 1420 sends these
		}},
		{"handshake message too long", DropMalformed, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(wire.TypeResponse, wire.InitiationSize+1)) }},
		{"unknown receiver index", DropUnknownIndex, memtun.Config{}, func(t *testing.T, x env) {
			d := x.p.seal(ipv4(hostB.v4, hostA.v4, 40, 1))
			d[4], d[5], d[6], d[7] = 0xde, 0xad, 0xbe, 0xef
			x.p.send(d)
		}},
		{"authentication fails", DropAuth, memtun.Config{}, func(t *testing.T, x env) {
			d := x.p.seal(ipv4(hostB.v4, hostA.v4, 40, 1))
			d[len(d)-1] ^= 1
			x.p.send(d)
		}},
		{"replayed", DropReplay, memtun.Config{}, func(t *testing.T, x env) {
			d := x.p.seal(nil)
			x.p.send(d, d)
		}},
		{"inner packet not IP", DropNotIP, memtun.Config{}, func(t *testing.T, x env) { x.p.send(x.p.seal(make([]byte, 40))) }},
		{"inner packet truncated", DropNotIP, memtun.Config{}, func(t *testing.T, x env) {
			p := ipv4(hostB.v4, hostA.v4, 100, 1)
			x.p.send(x.p.seal(p[:60]))
		}},
		{"inner source not allowed", DropNotAllowed, memtun.Config{}, func(t *testing.T, x env) {
			x.p.send(x.p.seal(ipv4(netip.MustParseAddr("10.0.0.5"), hostA.v4, 40, 1)))
		}},
		{"TUN refuses the packet", DropWriteError, memtun.Config{MTU: 576}, func(t *testing.T, x env) {
			x.p.send(x.p.seal(ipv4(hostB.v4, hostA.v4, 1000, 1)))
		}},
		{"forged initiation", DropHandshake, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(wire.TypeInitiation, wire.InitiationSize)) }},
		{"forged response", DropHandshake, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(wire.TypeResponse, wire.ResponseSize)) }},
		{"forged cookie reply", DropHandshake, memtun.Config{}, func(t *testing.T, x env) { x.p.send(junk(wire.TypeCookieReply, wire.CookieReplySize)) }},
		{"no route for the destination", DropNoRoute, memtun.Config{}, func(t *testing.T, x env) {
			x.e.inject(t, ipv4(hostA.v4, netip.MustParseAddr("10.99.0.1"), 100, 1))
		}},
		{"peer has no endpoint", DropNoEndpoint, memtun.Config{}, func(t *testing.T, x env) {
			x.e.inject(t, ipv4(hostA.v4, netip.MustParseAddr("10.0.0.5"), 100, 1))
		}},
		{"TUN packet not IP", DropNotIP, memtun.Config{}, func(t *testing.T, x env) { x.e.inject(t, make([]byte, 60)) }},
		{"TUN packet above the tunnel MTU", DropTooBig, memtun.Config{MTU: 1500}, func(t *testing.T, x env) {
			x.e.inject(t, ipv4(hostA.v4, hostB.v4, wire.MaxInnerSize+1, 1))
		}},
		{"socket refuses the datagram", DropSendError, memtun.Config{}, func(t *testing.T, x env) {
			x.conn.fail.Store(true)
			x.e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1))
		}},
	}
	for _, engine := range engines {
		for _, tc := range cases {
			t.Run(string(engine)+"/"+tc.name, func(t *testing.T) {
				var conn *failingConn
				e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, dev: tc.dev,
					wrapUDP: func(c *memudp.Conn) tunio.UDPConn { conn = &failingConn{Conn: c}; return conn }}, noEndpoint)
				p.initiate()
				before := e.tun.Stats()
				tc.act(t, env{e, p, conn})
				waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), tc.reason) > dropsOf(before, tc.reason) },
					func() string { return "drop[" + tc.reason.String() + "] not counted\n" + fmtStats(e.tun.Stats()) })
				e.expectNoPacket(t, 10*time.Millisecond)
				p.expectNothing(time.Millisecond)
				after := e.tun.Stats()
				if n := dropsOf(after, tc.reason) - dropsOf(before, tc.reason); n != 1 {
					t.Errorf("drop[%s] rose by %d, want 1\n%s", tc.reason, n, fmtStats(after))
				}
				if n := totalDrops(after) - totalDrops(before); n != 1 {
					t.Errorf("%d drops in all, want 1\n%s", n, fmtStats(after))
				}
			})
		}
	}
}

// TestStageCounters: after known traffic each way, every stage's packet
// and byte counters say what passed through it (inner bytes on the TUN
// side, datagram bytes on the UDP side), pools have their workers, queues
// are empty at rest and nothing restarted.
func TestStageCounters(t *testing.T) {
	const in, out = 90, 70
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 3, hsWorkers: 2})
			p.initiate()
			var inBytes, outBytes, outDgramBytes uint64
			var buf [wire.MaxInnerSize]byte
			for seq := range uint32(in) {
				pkt := flowPacket(buf[:], hostB, hostA, seq)
				inBytes += uint64(len(pkt))
				p.send(p.seal(pkt))
			}
			for range in {
				e.recv(t, 5*time.Second)
			}
			for seq := range uint32(out) {
				pkt := flowPacket(buf[:], hostA, hostB, seq)
				outBytes += uint64(len(pkt))
				outDgramBytes += uint64(wire.PaddedLen(len(pkt)) + wire.MinTransportSize)
				e.inject(t, pkt)
			}
			for range out {
				p.recvData(5 * time.Second)
			}
			type want struct {
				stage           string
				packets, bytes  uint64
				instances       int
				keepalives      uint64
				checkBytes      bool
				checkKeepalives bool
			}
			var wants []want
			if engine == EnginePipeline {
				wants = []want{
					{"decrypt", in + 1, 0, 3, 0, false, false}, // the data and the keepalive
					{"route-in", in, inBytes, 1, 1, true, true},
					{"tunwrite", in, inBytes, 1, 0, true, true},
					{"tunread", out, outBytes, 1, 0, true, false},
					{"route-out", out, outBytes, 1, 0, true, false},
					{"encrypt", out, 0, 3, 0, false, false},
					{"udpsend", out, outDgramBytes, 1, 0, true, false},
				}
			} else {
				wants = []want{
					{"inbound", in, inBytes, 1, 1, true, true},
					{"outbound", out, outDgramBytes, 1, 0, true, false},
				}
			}
			wants = append(wants, want{stage: "handshake", packets: 1, bytes: wire.InitiationSize, instances: 2, checkBytes: true})
			waitFor(t, 5*time.Second, func() bool {
				ss := e.tun.Stats()
				for _, w := range wants {
					if stageStats(t, ss, w.stage).Packets != w.packets {
						return false
					}
				}
				return true
			}, func() string { return "packet counts\n" + fmtStats(e.tun.Stats()) })
			ss := e.tun.Stats()
			for _, w := range wants {
				s := stageStats(t, ss, w.stage)
				if s.Packets != w.packets || w.checkBytes && s.Bytes != w.bytes || s.Instances != w.instances ||
					w.checkKeepalives && s.Keepalives != w.keepalives {
					t.Errorf("%s: %d packets, %d bytes, %d instances, %d keepalives; want %d, %d, %d, %d",
						w.stage, s.Packets, s.Bytes, s.Instances, s.Keepalives, w.packets, w.bytes, w.instances, w.keepalives)
				}
			}
			for _, s := range ss {
				if s.QueueDepth != 0 || s.Restarts != 0 || s.TotalDrops() != 0 {
					t.Errorf("%s: queue %d, restarts %d, drops %d at rest; want none", s.Name, s.QueueDepth, s.Restarts, s.TotalDrops())
				}
			}
			if t.Failed() {
				t.Logf("stats:\n%s", fmtStats(ss))
			}
		})
	}
}
