package stages

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// Zero allocations per packet: a whole tunnel, in-memory ends, real
// crypto, thousands of packets of mixed sizes, and the heap's allocation
// count over them. The drivers on the far side (sealing, feeding,
// draining, counting) allocate nothing per packet either, so whatever is
// counted is the tunnel's. A small constant is allowed for the
// measurement itself; one allocation per packet anywhere in the process
// is N, far above it (TestAllocsMeasureCatchesPerPacket checks that).

const (
	allocWarmup  = 2000
	allocPackets = 20000
	// allocBudget is what the whole measurement may allocate: the odd
	// allocation of the runtime, a timer or the drain goroutine (3 to 16
	// seen), never one per packet, nor one per batch of up to 300.
	allocBudget = 64
)

// allocRig is a tunnel under test and a hand-played peer whose drivers do
// not allocate per packet.
type allocRig struct {
	e    *end
	p    *rawPeer
	sink *memudp.Conn // the peer's socket the tunnel sends to; read without allocating

	tunWritten atomic.Uint64 // inner packets the tunnel wrote to its TUN
	target     atomic.Uint64
	reached    chan struct{}
	onWrite    func([]byte) // extra work per TUN write, for the control test
}

func newAllocRig(t *testing.T, v dataplane, onWrite func([]byte)) *allocRig {
	t.Helper()
	return newAllocRigSpec(t, v.spec(), onWrite)
}

// newAllocRigSpec is newAllocRig for a tunnel as s says (its engine,
// rebindable); the rig sets the rest.
func newAllocRigSpec(t *testing.T, s tunnelSpec, onWrite func([]byte)) *allocRig {
	t.Helper()
	r := &allocRig{reached: make(chan struct{}, 1), onWrite: onWrite}
	r.target.Store(^uint64(0))
	dev := memtun.Config{OnWrite: func(b []byte) {
		if r.onWrite != nil {
			r.onWrite(b)
		}
		if r.tunWritten.Add(1) == r.target.Load() {
			r.reached <- struct{}{}
		}
	}}
	// The real clock: the data path's periodic reports to the sessions
	// run too, as they do in production.
	s.workers, s.dev, s.clock = 2, dev, realClock{}
	r.e, r.p = withRawPeer(t, s)
	r.p.initiate()
	// Move the tunnel's endpoint for the peer to a socket nobody copies
	// from: the peer roams there.
	r.sink = r.p.listenBare(netip.MustParseAddrPort("192.0.2.2:9999"))
	r.p.sendFrom(r.sink, r.p.seal(nil))
	waitFor(t, 5*time.Second, func() bool { return keepalivesIn(r.e.tun.Stats()) == 2 },
		func() string { return "roaming keepalive not taken\n" + fmtStats(r.e.tun.Stats()) })
	return r
}

// inbound seals n packets as the peer and feeds them to the tunnel, and
// waits until all reached its TUN device.
func (r *allocRig) inbound(t *testing.T, first, n uint32, msgs []tunio.Datagram, pkts []wire.Packet) {
	r.target.Store(r.tunWritten.Load() + uint64(n))
	for seq := first; seq < first+n; {
		k := 0
		for ; k < len(msgs) && seq < first+n; k, seq = k+1, seq+1 {
			p := &pkts[k]
			p.InnerLen = uint16(len(flowPacket(p.Buf[wire.InnerOffset:wire.InnerOffset+wire.MaxInnerSize], hostB, hostA, seq)))
			if _, err := r.p.kp.Seal(p); err != nil {
				t.Fatal(err)
			}
			msgs[k] = tunio.Datagram{Buf: p.Buf[:], N: int(p.MsgLen), Addr: r.e.udp}
		}
		if err := r.sink.WriteBatch(msgs[:k]); err != nil {
			t.Fatal(err)
		}
	}
	r.await(t, "TUN writes")
}

// outbound injects n packets into the tunnel's TUN device and waits until
// the peer's socket has received them all.
func (r *allocRig) outbound(t *testing.T, first, n uint32, bufs [][]byte, in [][]byte, dgrams []tunio.Datagram) {
	drained := make(chan error, 1)
	go func() {
		got := 0
		for got < int(n) {
			k, err := r.sink.ReadBatch(dgrams)
			if err != nil {
				drained <- err
				return
			}
			got += k
		}
		drained <- nil
	}()
	for seq := first; seq < first+n; {
		k := 0
		for ; k < len(bufs) && seq < first+n; k, seq = k+1, seq+1 {
			in[k] = flowPacket(bufs[k], hostA, hostB, seq)
		}
		if err := r.e.dev.InjectBatch(in[:k]); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the peer did not receive %d datagrams\n%s", n, fmtStats(r.e.tun.Stats()))
	}
}

func (r *allocRig) await(t *testing.T, what string) {
	select {
	case <-r.reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: %d of %d\n%s", what, r.tunWritten.Load(), r.target.Load(), fmtStats(r.e.tun.Stats()))
	}
}

// mallocs returns the heap allocations, process-wide, that run makes.
func mallocs(run func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// measureDirection warms a direction up, then returns the allocations of
// allocPackets packets through it.
func measureDirection(t *testing.T, r *allocRig, inbound bool) uint64 {
	t.Helper()
	const batch = 128
	msgs := make([]tunio.Datagram, batch)
	pkts := make([]wire.Packet, batch)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, wire.MaxInnerSize)
	}
	in := make([][]byte, batch)
	dgrams := make([]tunio.Datagram, r.sink.BatchSize())
	for i := range dgrams {
		dgrams[i].Buf = make([]byte, wire.MaxMessageSize)
	}
	run := func(first, n uint32) {
		if inbound {
			r.inbound(t, first, n, msgs, pkts)
		} else {
			r.outbound(t, first, n, bufs, in, dgrams)
		}
	}
	run(0, allocWarmup)
	return mallocs(func() { run(allocWarmup, allocPackets) })
}

// TestNoAllocsPerPacket: in steady state neither engine allocates per
// packet, in either direction.
func TestNoAllocsPerPacket(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 88,000 packets")
	}
	for _, v := range dataplanes {
		for _, inbound := range []bool{true, false} {
			dir := map[bool]string{true: "inbound", false: "outbound"}[inbound]
			t.Run(fmt.Sprintf("%s/%s", v.name, dir), func(t *testing.T) {
				r := newAllocRig(t, v, nil)
				got := measureDirection(t, r, inbound)
				t.Logf("%d allocations for %d packets (%.4f per packet)", got, allocPackets, float64(got)/allocPackets)
				if got >= allocBudget {
					t.Errorf("%d heap allocations for %d packets: the %s path allocates per packet (or per batch)\n%s",
						got, allocPackets, dir, fmtStats(r.e.tun.Stats()))
				}
			})
		}
	}
}

// TestAllocsMeasureCatchesPerPacket: the measurement above sees one
// allocation per packet made anywhere on the path (here in the TUN
// device's write callback) and would fail the test.
func TestAllocsMeasureCatchesPerPacket(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 22,000 packets")
	}
	var sink atomic.Pointer[[]byte]
	r := newAllocRig(t, dataplane{engine: EnginePipeline}, func(b []byte) {
		c := append([]byte(nil), b[:1]...) // one small allocation per packet
		sink.Store(&c)
	})
	if got := measureDirection(t, r, true); got < allocPackets {
		t.Errorf("measured %d allocations for %d packets that allocate one each: the measurement cannot be trusted", got, allocPackets)
	}
}
