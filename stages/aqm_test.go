package stages

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pipeguard/stages/codel"
	"pipeguard/stages/fq"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// udp4 is a UDP-in-IPv4 packet of size bytes from hostA:sport to
// hostB:dport with the ECN field ecn, a valid header checksum, and seq at
// the start of its payload.
func udp4(sport, dport uint16, size int, seq uint32, ecn wire.ECN) []byte {
	b := ipv4(hostA.v4, hostB.v4, size, seq)
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	b[1] = byte(ecn)
	binary.BigEndian.PutUint16(b[10:], 0)
	binary.BigEndian.PutUint16(b[10:], ipv4HeaderChecksum(b[:20]))
	return b
}

// ipv4HeaderChecksum is the checksum an IPv4 header h should carry,
// computed from scratch (RFC 791), its checksum field counted as zero.
func ipv4HeaderChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i != 10 {
			s += uint32(binary.BigEndian.Uint16(h[i:]))
		}
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func checksumValid(p []byte) bool {
	return binary.BigEndian.Uint16(p[10:]) == ipv4HeaderChecksum(p[:20])
}

// TestSparseFirstThroughTunnel: a packet of a sparse flow that reaches
// the tunnel behind 1000 packets of a bulk flow, while they wait in its
// managed queue, leaves ahead of them: after at most the run the stage
// taking from the queue held when the sparse packet came, and the bulk
// flow's first quantum.
func TestSparseFirstThroughTunnel(t *testing.T) {
	const bulk, batch = 1000, 16
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			// standNow: the bulk flow's backlog stands in the device's
			// queue from the first read (TestStanding covers when one
			// stands), so the sequential loop queues it.
			a, b := newPair(t, pairOpts{engine: engine, workers: 2, net: blocking, faults: true,
				manage: true, target: lenientTarget, interval: lenientInterval, standNow: true,
				devA: memtun.Config{BatchSize: batch, QueueLen: 2 * bulk}})
			a.inject(t, udp4(1000, 2000, 1280, 0, wire.NotECT))
			b.recv(t, 5*time.Second)

			// Hold the stage that takes from A's outbound managed queue,
			// so that the bulk flow's packets wait there. The sequential
			// engine's loop reads and takes, so it is held after a read.
			hold := stageRouteOut
			if engine == EngineSequential {
				hold = stageTUNRead
			}
			release := a.tun.faults.stall(hold)
			pkts := make([][]byte, 0, bulk+1)
			for seq := range uint32(bulk) {
				pkts = append(pkts, udp4(1000, 2000, 1280, seq+1, wire.NotECT))
			}
			pkts = append(pkts, udp4(5353, 53, 64, 0, wire.NotECT))
			a.inject(t, pkts...)
			if engine == EnginePipeline {
				// The device's queue empties when tunread reads its last
				// batch, before that batch is in the managed queue: wait
				// for the queue itself.
				waitFor(t, 5*time.Second, func() bool { return a.dev.Queued() == 0 && a.tun.aqm.out.Len() == bulk+1 },
					func() string {
						return fmt.Sprintf("tunread did not read everything into the managed queue: %d left on the device, %d in the queue",
							a.dev.Queued(), a.tun.aqm.out.Len())
					})
			}
			release()
			for i := range bulk + 1 {
				p := b.recv(t, 5*time.Second)
				if binary.BigEndian.Uint16(p[20:]) == 5353 {
					if i > batch+1 {
						t.Fatalf("the sparse packet left %dth, behind %d bulk packets", i+1, i)
					}
					t.Logf("the sparse packet left %dth of %d", i+1, bulk+1)
					return
				}
			}
			t.Fatal("the sparse packet never arrived")
		})
	}
}

// TestSparseFirstInbound: inbound, the managed queue sorts a peer's
// messages by their inner flow (read from the first keystream block
// before opening), so a packet of a sparse flow that reaches the tunnel
// behind 1000 messages of the same peer's bulk flow, while they wait in
// its inbound queue, leaves ahead of them: after at most the run the
// stage taking from the queue held when it came (maxBatch).
func TestSparseFirstInbound(t *testing.T) {
	const bulk, batch = 1000, 64
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2, net: blocking, faults: true,
		manage: true, target: lenientTarget, interval: lenientInterval,
		devA: memtun.Config{BatchSize: batch, QueueLen: 2 * bulk}})
	a.inject(t, udp4(1000, 2000, 1280, 0, wire.NotECT))
	b.recv(t, 5*time.Second)

	// Hold the stage that takes from B's inbound managed queue, so that
	// the bulk flow's messages wait there.
	release := b.tun.faults.stall(stageDispatchIn)
	pkts := make([][]byte, 0, bulk)
	for seq := range uint32(bulk) {
		pkts = append(pkts, udp4(1000, 2000, 1280, seq+1, wire.NotECT))
	}
	a.inject(t, pkts...)
	queued := func(n int) {
		waitFor(t, 5*time.Second, func() bool { return b.tun.aqm.in.Len() == n },
			func() string { return fmt.Sprintf("%d messages in B's inbound queue, want %d", b.tun.aqm.in.Len(), n) })
	}
	queued(bulk)
	a.inject(t, udp4(5353, 53, 64, 0, wire.NotECT)) // after the bulk, on the wire too
	queued(bulk + 1)
	release()
	for i := range bulk + 1 {
		p := b.recv(t, 5*time.Second)
		if binary.BigEndian.Uint16(p[20:]) == 5353 {
			if i > maxBatch {
				t.Fatalf("the sparse packet left %dth, behind %d bulk packets", i+1, i)
			}
			t.Logf("the sparse packet left %dth of %d", i+1, bulk+1)
			return
		}
	}
	t.Fatal("the sparse packet never arrived")
}

// ecnConn is a UDPConn that records the outer ECN of the datagrams it
// sends and, when rewrite is set, sends them with that ECN instead: a
// network that marks CE.
type ecnConn struct {
	tunio.UDPConn
	mu      sync.Mutex
	sent    map[wire.ECN]int
	rewrite wire.ECN
}

func (c *ecnConn) WriteBatch(msgs []tunio.Datagram) error {
	c.mu.Lock()
	for i := range msgs {
		c.sent[wire.ECN(msgs[i].ECN)]++
		if c.rewrite != wire.NotECT {
			msgs[i].ECN = uint8(c.rewrite)
		}
	}
	c.mu.Unlock()
	return c.UDPConn.WriteBatch(msgs)
}

func (c *ecnConn) sentWith(e wire.ECN) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[e]
}

// TestECNThroughTunnel: the outer header takes the inner packet's ECN as
// kernel WireGuard sets it (CE goes out as ECT(0)), and at the far end
// the outer ECN is carried into the inner header by RFC 6040: a CE from
// the network reaches an ECN-capable packet, its checksum valid, and
// drops a packet that cannot carry it.
func TestECNThroughTunnel(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			leakCheck(t)
			net := memudp.NewNetworkConfig(blocking)
			ka, kb := mustKey(t), mustKey(t)
			udpA, udpB := netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("192.0.2.2:51820")
			var wire0 *ecnConn
			a := startTunnel(t, net, tunnelSpec{key: ka, udp: udpA, inner: hostA.v4, engine: engine, workers: 2,
				peers: []PeerConfig{{PublicKey: kb.Public(), Endpoint: udpB, AllowedIPs: allowedIPs(hostB, false)}},
				wrapUDP: func(c *memudp.Conn) tunio.UDPConn {
					wire0 = &ecnConn{UDPConn: c, sent: map[wire.ECN]int{}}
					return wire0
				}})
			b := startTunnel(t, net, tunnelSpec{key: kb, udp: udpB, inner: hostB.v4, engine: engine, workers: 2,
				peers: []PeerConfig{{PublicKey: ka.Public(), Endpoint: udpA, AllowedIPs: allowedIPs(hostA, false)}}})

			// The session first: handshake messages go out Not-ECT too.
			a.inject(t, udp4(1, 2, 200, 0, wire.NotECT))
			b.recv(t, 5*time.Second)

			// Encapsulation.
			seq := uint32(1)
			for _, tc := range []struct{ inner, outer wire.ECN }{
				{wire.NotECT, wire.NotECT}, {wire.ECT0, wire.ECT0}, {wire.ECT1, wire.ECT1}, {wire.CE, wire.ECT0},
			} {
				before := wire0.sentWith(tc.outer)
				a.inject(t, udp4(1, 2, 200, seq, tc.inner))
				seq++
				p := b.recv(t, 5*time.Second)
				if got := wire.PacketECN(p); got != tc.inner || !checksumValid(p) {
					t.Errorf("inner %v arrived as %v (checksum valid %v)", tc.inner, got, checksumValid(p))
				}
				if wire0.sentWith(tc.outer) != before+1 {
					t.Errorf("inner %v: not sent with outer %v (sent %v)", tc.inner, tc.outer, wire0.sent)
				}
			}

			// Decapsulation of a CE the network set.
			wire0.mu.Lock()
			wire0.rewrite = wire.CE
			wire0.mu.Unlock()
			for _, inner := range []wire.ECN{wire.ECT0, wire.ECT1, wire.CE} {
				a.inject(t, udp4(1, 2, 200, seq, inner))
				seq++
				p := b.recv(t, 5*time.Second)
				if got := wire.PacketECN(p); got != wire.CE || !checksumValid(p) {
					t.Errorf("inner %v under an outer CE arrived as %v (checksum valid %v)", inner, got, checksumValid(p))
				}
			}
			a.inject(t, udp4(1, 2, 200, seq, wire.NotECT))
			waitFor(t, 5*time.Second, func() bool { return dropsOf(b.tun.Stats(), DropECN) == 1 },
				func() string { return "a Not-ECT packet under an outer CE was not dropped\n" + fmtStats(b.tun.Stats()) })
			b.expectNoPacket(t, 50*time.Millisecond)
		})
	}
}

// TestStandingQueueThroughTunnel: a burst far larger than the tunnel's
// target delay's worth waits in its managed queues; the controller drops
// from the standing queue, or marks the ECN-capable packets CE instead
// (with the inner checksum valid), counts what it did, and the rest
// arrives, in order.
func TestStandingQueueThroughTunnel(t *testing.T) {
	const burst = 1000
	for _, engine := range engines {
		for _, ecn := range []wire.ECN{wire.NotECT, wire.ECT0} {
			t.Run(fmt.Sprintf("%s/%v", engine, ecn), func(t *testing.T) {
				a, b := newPair(t, pairOpts{engine: engine, workers: 2, net: blocking, faults: true,
					manage: true, target: 20 * time.Microsecond, interval: 100 * time.Microsecond,
					devA: memtun.Config{QueueLen: 2 * burst}})
				a.inject(t, udp4(1, 2, 1280, 0, ecn))
				b.recv(t, 5*time.Second)
				pkts := make([][]byte, burst)
				for i := range pkts {
					pkts[i] = udp4(1, 2, 1280, uint32(i+1), ecn)
				}
				// The pipeline's route-out is held until the burst is in
				// the managed queue: a route-out that keeps up with
				// tunread passes a burst on into the encrypt pool's
				// queues (256 in and 256 out a worker), where it waits
				// unmanaged, and the managed queue never stands (4 of 80
				// runs of the pipeline's cases before this hold).
				release := func() {}
				if engine == EnginePipeline {
					release = a.tun.faults.stall(stageRouteOut)
				}
				a.inject(t, pkts...)
				if engine == EnginePipeline {
					waitFor(t, 5*time.Second, func() bool { return a.dev.Queued() == 0 && a.tun.aqm.out.Len() == burst },
						func() string {
							return fmt.Sprintf("tunread did not read the burst into the managed queue: %d left on the device, %d in the queue",
								a.dev.Queued(), a.tun.aqm.out.Len())
						})
				}
				release()

				var got, marked int
				last := uint32(0)
				st := stats(a, b)
				settledDrops := func() uint64 {
					return dropsOf(a.tun.Stats(), DropQueueDelay) + dropsOf(b.tun.Stats(), DropQueueDelay)
				}
				for got+int(settledDrops()) < burst {
					select {
					case p := <-b.dev.Outbound():
						pk := p.Bytes()
						if s := seqOf(pk); s <= last {
							t.Fatalf("packet %d after %d", s, last)
						} else {
							last = s
						}
						if !checksumValid(pk) {
							t.Fatalf("packet %d: IPv4 header checksum invalid after marking", seqOf(pk))
						}
						if wire.PacketECN(pk) == wire.CE {
							marked++
						}
						got++
					case <-time.After(5 * time.Second):
						t.Fatalf("%d arrived, %d dropped of %d\n%s", got, settledDrops(), burst, st())
					}
				}
				var drops, marks uint64
				for _, e := range []*end{a, b} {
					for _, q := range e.tun.QueueStats() {
						drops += q.Drops
						marks += q.Marks
						if !q.Managed {
							t.Errorf("queue %s not managed", q.Name)
						}
					}
				}
				t.Logf("%d arrived (%d CE), %d dropped, %d marked", got, marked, drops, marks)
				if drops != settledDrops() {
					t.Errorf("queues dropped %d, stages counted %d", drops, settledDrops())
				}
				if ecn == wire.NotECT {
					if drops == 0 || marks != 0 || marked != 0 {
						t.Errorf("Not-ECT: %d drops, %d marks, %d CE arrived; want drops only\n%s", drops, marks, marked, st())
					}
					return
				}
				if drops != 0 || marks == 0 || marked == 0 || uint64(marked) > marks {
					t.Errorf("ECT(0): %d drops, %d marks, %d CE arrived; want marks only, each arriving as CE\n%s", drops, marks, marked, st())
				}
			})
		}
	}
}

func TestInboundClass(t *testing.T) {
	const probe = wire.TransportHeaderSize + 96 + wire.TagSize // 64-byte UDP payload, padded
	const full = wire.MaxMessageSize
	for _, tc := range []struct {
		n    uint16
		ecn  wire.ECN
		want codel.Class
	}{
		{probe, wire.NotECT, codel.Spared},
		{wire.MinTransportSize, wire.NotECT, codel.Spared}, // keepalive-sized
		{sparedInbound, wire.NotECT, codel.Spared},
		{sparedInbound + 16, wire.NotECT, codel.NotECT},
		{full, wire.NotECT, codel.NotECT},
		{probe, wire.ECT0, codel.ECT}, // marking costs the packet nothing
		{full, wire.ECT1, codel.ECT},
		{full, wire.CE, codel.ECT},
	} {
		if got := inboundClass(tc.n, tc.ecn); got != tc.want {
			t.Errorf("%d bytes, %v: class %d, want %d", tc.n, tc.ecn, got, tc.want)
		}
	}
}

// TestDirectWhenIdle: the loop that reads and takes from a managed queue
// (the sequential engine's, and the pipeline's edge stage once it took
// its queue over) works on a batch where it read it, without queueing
// it, when nothing was queued and no backlog stands in the kernel's
// queue (the read left it empty, or reads have not left it non-empty
// for the target: standing), so that no flow's turn or controller is
// needed: a small burst, more than the pipeline's reader takes inline
// otherwise, crosses both managed queues without entering either. A
// burst larger than a read goes through the outbound queue, where a
// sparse packet could overtake it, once a backlog stands (standNow);
// one that the loop clears within the target (here 30 s) does not.
func TestDirectWhenIdle(t *testing.T) {
	const batch, small = 16, defaultInlineMax + 4
	for _, tc := range []struct {
		name     string
		engine   Engine
		inline   int
		standNow bool
	}{
		{"sequential", EngineSequential, 0, true},
		{"pipeline-taken-over", EnginePipeline, inlineAll, true},
		{"sequential/within-target", EngineSequential, 0, false},
		{"pipeline-taken-over/within-target", EnginePipeline, inlineAll, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPair(t, pairOpts{engine: tc.engine, workers: 2, net: blocking, manage: true, inlineMax: tc.inline, standNow: tc.standNow,
				target: lenientTarget, interval: lenientInterval, devA: memtun.Config{BatchSize: batch, QueueLen: 4 * batch}})
			a.inject(t, udp4(1000, 2000, 100, 0, wire.NotECT)) // the session
			b.recv(t, 5*time.Second)
			if tc.engine == EnginePipeline {
				waitFor(t, 5*time.Second, func() bool {
					return a.tun.aqm.out.Taking(fq.Producer) && b.tun.aqm.in.Taking(fq.Producer)
				}, func() string { return "the edge stages did not take their queues over" })
				// An edge stage may have been waiting in its read as the
				// stage after the queue yielded it: one packet, so that
				// the next read is the taker's.
				a.inject(t, udp4(1000, 2000, 100, 0, wire.NotECT))
				b.recv(t, 5*time.Second)
			}
			out, in := a.tun.aqm.out.Stats().Taken, b.tun.aqm.in.Stats().Taken
			burst := func(n int) {
				pkts := make([][]byte, 0, n)
				for seq := range uint32(n) {
					pkts = append(pkts, udp4(1000, 2000, 1280, seq+1, wire.NotECT))
				}
				a.inject(t, pkts...)
				for range pkts {
					b.recv(t, 5*time.Second)
				}
			}
			burst(small)
			if n := a.tun.aqm.out.Stats().Taken - out; n != 0 {
				t.Errorf("%d packets read at once into an idle tunnel: %d went through the outbound queue", small, n)
			}
			if n := b.tun.aqm.in.Stats().Taken - in; n != 0 {
				t.Errorf("%d datagrams read at once into an idle tunnel: %d went through the inbound queue", small, n)
			}
			burst(3 * batch)
			n := a.tun.aqm.out.Stats().Taken - out
			switch {
			case tc.standNow && n == 0:
				t.Errorf("a burst of %d packets, %d a read, with a backlog standing at once, never entered the outbound queue", 3*batch, batch)
			case !tc.standNow && n != 0:
				t.Errorf("a burst of %d packets, %d a read, cleared within the target: %d went through the outbound queue", 3*batch, batch, n)
			}
			if n := b.tun.aqm.in.Stats().Taken - in; !tc.standNow && n != 0 {
				t.Errorf("a burst of %d datagrams cleared within the target: %d went through the inbound queue", 3*batch, n)
			}
		})
	}
}
