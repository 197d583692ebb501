package stages

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// Sizes of the backpressure tests' queues: small, so they fill fast.
const (
	bpQueue    = 16 // the tunnels' channels
	bpTUNQueue = 32 // the TUN devices' queues
	bpUDPQueue = 32 // the sockets' receive queues
)

// settled waits until two snapshots of both tunnels' counters, 20 ms
// apart, are the same: nothing moves any more.
func settled(t *testing.T, a, b *end) (sa, sb []StageStats) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	sa, sb = a.tun.Stats(), b.tun.Stats()
	for {
		time.Sleep(20 * time.Millisecond)
		na, nb := a.tun.Stats(), b.tun.Stats()
		if reflect.DeepEqual(sa, na) && reflect.DeepEqual(sb, nb) {
			return na, nb
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tunnels never came to rest\n%s", stats(a, b)())
		}
		sa, sb = na, nb
	}
}

// TestFullTUNBlocks: B's TUN device stops taking packets while A streams
// to it. On a network that makes senders wait, every stage from B's TUN
// back to A's is blocked: the pipeline's channels fill (the last one to
// its capacity) and stay so, none above its capacity, nothing is dropped, the socket's queue is full
// and so is A's TUN queue. Once B's TUN takes packets again, every packet
// arrives, in order.
func TestFullTUNBlocks(t *testing.T) {
	const n = 3000
	for _, v := range dataplanes[:3] {
		engine := v.engine
		t.Run(v.name, func(t *testing.T) {
			a, b := newPair(t, pairOpts{dualStack: true, engine: engine, workers: 2, queue: bpQueue, clock: fakeClock(), noInline: v.noInline,
				net:  memudp.Config{Block: true, QueueLen: bpUDPQueue, BatchSize: 8},
				devA: memtun.Config{QueueLen: bpTUNQueue, BatchSize: 8}, devB: memtun.Config{QueueLen: bpTUNQueue, BatchSize: 8}})
			if err := sendFlows(a, hostA, []host{hostB}, 0, 1); err != nil {
				t.Fatal(err)
			}
			b.recv(t, 5*time.Second)
			errc := make(chan error, 1)
			go func() { errc <- sendFlows(a, hostA, []host{hostB}, 1, n-1) }()
			waitFor(t, 5*time.Second, func() bool { return a.dev.Queued() == bpTUNQueue && len(b.dev.Outbound()) == bpTUNQueue },
				func() string { return "the path did not fill\n" + stats(a, b)() })
			sa, sb := settled(t, a, b)
			msg := "\n" + stats(a, b)()
			for _, ss := range [][]StageStats{sa, sb} {
				for _, s := range ss {
					if s.QueueDepth > s.QueueCap {
						t.Errorf("%s: queue %d above its capacity %d%s", s.Name, s.QueueDepth, s.QueueCap, msg)
					}
				}
				if d := totalDrops(ss); d != 0 {
					t.Errorf("%d packets dropped by a tunnel that should block%s", d, msg)
				}
			}
			if v.noInline { // the pools' queues are in use
				for _, x := range []struct {
					ss     []StageStats
					stages []string
				}{{sb, []string{"decrypt", "route-in", "tunwrite"}}, {sa, []string{"route-out", "encrypt", "udpsend"}}} {
					for _, name := range x.stages {
						// A pool's queues fill turn by turn (runs of 4
						// here) and are reserved in batches (of 8): the
						// input the feeder waits on is full, and so is the
						// output of the worker that stopped it; the others
						// may be short of a run or a batch.
						s := stageStats(t, x.ss, name)
						least := s.QueueCap / 2
						if s.QueueDepth < least || s.QueueCap == 0 {
							t.Errorf("%s: queue %d of %d, want at least %d: backpressure must fill a blocked stage's input%s",
								name, s.QueueDepth, s.QueueCap, least, msg)
						}
					}
				}
			}
			if q, d := b.conn.Queued(), b.conn.Dropped(); q != bpUDPQueue || d != 0 {
				t.Errorf("B's socket holds %d of %d, dropped %d: the edge must block%s", q, bpUDPQueue, d, msg)
			}

			// Release B's TUN: all of it arrives.
			atB := newFlowChecker(hostB, []host{hostA}, false).seen(0, 1).watch(b)
			atB.wait(t, 0, n, 5*time.Second, stats(a, b))
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFullTUNDropsAtNetworkEdge: as TestFullTUNBlocks, but the network
// drops at a full receive queue, as a real one does. The tunnel still
// drops nothing itself: its queues block, the socket's queue overflows
// and the network counts what it lost. Once B's TUN takes packets again,
// what was not lost arrives in order, and every packet is accounted for.
//
// A streams in rounds until, at rest, B's socket is full and the network
// has dropped some: whether one round outlasts the time B takes to fill
// its path depends on how the scheduler shares the CPU between A's
// sending stages and B's receiving ones (a B starved while A sends a
// whole round finds the round over and its path still short of full).
func TestFullTUNDropsAtNetworkEdge(t *testing.T) {
	const (
		round     = 1000
		maxRounds = 20
	)
	for _, v := range dataplanes[:3] {
		engine := v.engine
		t.Run(v.name, func(t *testing.T) {
			a, b := newPair(t, pairOpts{dualStack: true, engine: engine, workers: 2, queue: bpQueue, clock: fakeClock(), noInline: v.noInline,
				net:  memudp.Config{QueueLen: bpUDPQueue, BatchSize: 8},
				devA: memtun.Config{QueueLen: bpTUNQueue, BatchSize: 8}, devB: memtun.Config{QueueLen: bpTUNQueue, BatchSize: 8}})
			if err := sendFlows(a, hostA, []host{hostB}, 0, 1); err != nil {
				t.Fatal(err)
			}
			b.recv(t, 5*time.Second)
			sent := func() uint64 {
				name := "udpsend"
				if engine == EngineSequential {
					name = "outbound"
				}
				return stageStats(t, a.tun.Stats(), name).Packets
			}
			n := uint32(1)
			var sb []StageStats
			rounds := 0
			for ; b.conn.Queued() != bpUDPQueue || b.conn.Dropped() == 0; rounds++ {
				if rounds == maxRounds {
					t.Fatalf("after %d packets B's socket holds %d of %d and dropped %d: it should have overflowed\n%s",
						n, b.conn.Queued(), bpUDPQueue, b.conn.Dropped(), stats(a, b)())
				}
				if err := sendFlows(a, hostA, []host{hostB}, n, round); err != nil {
					t.Fatal(err)
				}
				n += round
				// Packet 0 went out from the queue for the handshake (the
				// timer actor sent it), the rest from the data path.
				waitFor(t, 5*time.Second, func() bool { return sent() == uint64(n-1) }, func() string { return "A did not send it all\n" + stats(a, b)() })
				_, sb = settled(t, a, b)
			}
			t.Logf("B's socket overflowed after %d rounds of %d packets", rounds, round)
			msg := "\n" + stats(a, b)()
			if d := totalDrops(sb) + totalDrops(a.tun.Stats()); d != 0 {
				t.Errorf("the tunnels dropped %d packets; only the network may%s", d, msg)
			}

			atB := newFlowChecker(hostB, []host{hostA}, true).seen(0, 1).watch(b)
			want := int(n) - int(b.conn.Dropped())
			waitFor(t, 5*time.Second, func() bool { got, _, _ := atB.result(0); return got >= want },
				func() string { return fmt.Sprintf("B's TUN did not get the %d packets the network kept%s", want, msg) })
			b.expectNoPacket(t, 20*time.Millisecond)
			if got, _, err := atB.result(0); err != nil || got != want {
				t.Errorf("received %d, want %d (%d sent, %d dropped by the network): %v", got, want, n, b.conn.Dropped(), err)
			}
		})
	}
}

// gatedConn holds back the tunnel's writes to one address until opened,
// and reports when the first one waits.
type gatedConn struct {
	*memudp.Conn
	to      netip.AddrPort
	waiting chan struct{} // closed when a write to `to` first waits
	open    chan struct{} // closed to let writes through
	w, o    sync.Once
}

func (g *gatedConn) WriteBatch(msgs []tunio.Datagram) error {
	for _, m := range msgs {
		if m.Addr == g.to {
			g.w.Do(func() { close(g.waiting) })
			<-g.open
		}
	}
	return g.Conn.WriteBatch(msgs)
}

func (g *gatedConn) release() { g.o.Do(func() { close(g.open) }) }

func (g *gatedConn) Close() error {
	g.release()
	return g.Conn.Close()
}

// TestHandshakeFloodDropsNotData: with the handshake workers busy (its
// reply to an initiation held back), a flood of handshake messages fills
// its queue, and every one beyond the queue's capacity is dropped and
// counted as queue_full, while transport data from an established peer
// keeps flowing, all of it, in order.
func TestHandshakeFloodDropsNotData(t *testing.T) {
	const (
		flood = HandshakeQueueCapacity + 300
		data  = 500
	)
	floodAddr := netip.MustParseAddrPort("203.0.113.9:1000")
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			var gate *gatedConn
			net := memudp.NewNetworkConfig(blocking)
			leakCheck(t)
			c, cpc := newRawPeer(t, net, floodAddr, host{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("fd00::3")})
			e, p := withRawPeerOn(t, net, tunnelSpec{engine: engine, workers: 2, hsWorkers: 1, wrapUDP: func(conn *memudp.Conn) tunio.UDPConn {
				gate = &gatedConn{Conn: conn, to: floodAddr, waiting: make(chan struct{}), open: make(chan struct{})}
				return gate
			}}, cpc)
			defer gate.release()
			c.attach(e)
			p.initiate()

			// The actor answers c's initiation and waits at the gate.
			var msg [wire.InitiationSize]byte
			var ini wire.Initiation
			if err := c.hs.CreateInitiation(time.Now(), &c.index, &ini); err != nil {
				t.Fatal(err)
			}
			ini.Marshal(&msg)
			c.send(msg[:])
			select {
			case <-gate.waiting:
			case <-time.After(5 * time.Second):
				t.Fatalf("the handshake workers did not answer\n%s", fmtStats(e.tun.Stats()))
			}

			junk := make([][]byte, flood)
			for i := range junk {
				junk[i] = make([]byte, wire.InitiationSize)
				junk[i][0] = byte(wire.TypeInitiation)
				junk[i][100] = byte(i)
			}
			atT := checkFlows(e, hostA, []host{hostB}, false)
			var buf [wire.MaxInnerSize]byte
			for seq := range uint32(data) {
				p.send(p.seal(flowPacket(buf[:], hostB, hostA, seq)))
				if seq%100 == 0 {
					c.send(junk[seq/100*flood/5 : (seq/100+1)*flood/5]...)
				}
			}
			atT.wait(t, 0, data, 5*time.Second, stats(e))
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropQueueFull) == flood-HandshakeQueueCapacity },
				func() string {
					return fmt.Sprintf("want %d queue_full drops\n%s", flood-HandshakeQueueCapacity, fmtStats(e.tun.Stats()))
				})
			ss := e.tun.Stats()
			if hs := stageStats(t, ss, "handshake"); hs.QueueDepth != hs.QueueCap || hs.QueueCap != HandshakeQueueCapacity {
				t.Errorf("handshake queue %d of %d, want full at %d\n%s", hs.QueueDepth, hs.QueueCap, HandshakeQueueCapacity, fmtStats(ss))
			}
			if other := totalDrops(ss) - dropsOf(ss, DropQueueFull); other != 0 {
				t.Errorf("%d drops other than queue_full\n%s", other, fmtStats(ss))
			}

			// Open the gate: the actor works through its queue (junk,
			// dropped as invalid) and c gets its response.
			gate.release()
			c.recvType(wire.TypeResponse, 5*time.Second)
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropHandshake) == HandshakeQueueCapacity },
				func() string { return "the queued junk was not all rejected\n" + fmtStats(e.tun.Stats()) })
		})
	}
}
