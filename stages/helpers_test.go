package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/noise"
	"pipeguard/supervisor/clock"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// testLog is silent unless PIPEGUARD_TEST_LOG=1.
func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("PIPEGUARD_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// ipv4 builds a UDP-in-IPv4 packet of total length size whose payload
// starts with seq, so a receiver can check order and content.
func ipv4(src, dst netip.Addr, size int, seq uint32) []byte {
	b := make([]byte, size)
	fillIPv4(b, src, dst, seq)
	return b
}

func fillIPv4(b []byte, src, dst netip.Addr, seq uint32) {
	size := len(b)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(size))
	b[8] = 64
	b[9] = 17 // UDP
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[24:], uint16(size-20))
	if size >= 32 {
		binary.BigEndian.PutUint32(b[28:], seq)
		for i := 32; i < size; i++ {
			b[i] = byte(seq) + byte(i)
		}
	}
}

func seqOf(pkt []byte) uint32 { return binary.BigEndian.Uint32(pkt[28:32]) }

// Inner addresses of newPair's tunnels A and B.
var (
	hostA = host{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	hostB = host{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
)

// end is one tunnel of a test with its in-memory TUN and UDP.
type end struct {
	tun    *Tunnel
	dev    *memtun.TUN
	conn   *memudp.Conn
	udp    netip.AddrPort // the tunnel's UDP address
	addr   netip.Addr     // inner address
	key    noise.PrivateKey
	cancel context.CancelFunc
	errc   chan error
}

func mustKey(t testing.TB) noise.PrivateKey {
	t.Helper()
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pairOpts tunes newPair.
type pairOpts struct {
	engine  Engine
	engineB Engine // B's engine when it differs from A's
	workers int
	queue   int
	devA    memtun.Config
	devB    memtun.Config
	net     memudp.Config // the in-memory network between them
	clock   clock.Clock   // nil: the real clock
	faults  bool          // give both tunnels a fault injector
	// dualStack allows each tunnel the other's IPv6 address too.
	dualStack bool
	// noInline turns the pipeline's inline path off (inline.go): every
	// packet goes through the pools, as a test of the pools needs;
	// inlineMax fixes its limit instead. Either keeps the spread
	// decision (spread.go) from moving the limit.
	noInline  bool
	inlineMax int
	standNow  bool // tunnelSpec.standNow
	// manage turns queue management on (Config.NoQueueManagement off).
	// Tests run without it unless they say so: the controller drops from
	// a queue that stands above its target, and an in-memory flood that
	// never slows down, under the race detector, makes one; tests that
	// count every packet want a tunnel that only ever waits. target and
	// interval, if set, are the controller's (Config.QueueTarget,
	// QueueInterval).
	manage           bool
	target, interval time.Duration
}

// dataplane is an engine with the settings of its inline path.
type dataplane struct {
	name      string
	engine    Engine
	noInline  bool // the pipeline's inline path off: every packet through the pools
	inlineMax int  // the inline path's largest batch, if not the default
	manage    bool // queue management on, with a controller that never drops (lenient)
}

// dataplanes are the variants tests of the data path run on: each engine
// as configured, the pipeline with its inline path off, and the pipeline
// taking every batch it can inline (inline.go); then each engine with
// queue management on.
var dataplanes = []dataplane{
	{name: "sequential", engine: EngineSequential},
	{name: "pipeline", engine: EnginePipeline},
	{name: "pipeline-pools", engine: EnginePipeline, noInline: true},
	{name: "pipeline-inline", engine: EnginePipeline, inlineMax: 1 << 20},
	{name: "sequential-managed", engine: EngineSequential, manage: true},
	{name: "pipeline-managed", engine: EnginePipeline, manage: true},
	{name: "pipeline-managed-inline", engine: EnginePipeline, manage: true, inlineMax: 1 << 20},
}

// spec is a tunnel spec with v's engine and settings.
func (v dataplane) spec() tunnelSpec {
	s := tunnelSpec{engine: v.engine, noInline: v.noInline, inlineMax: v.inlineMax, manage: v.manage}
	if v.manage {
		s.target, s.interval = lenientTarget, lenientInterval
	}
	return s
}

// lenient is a controller no in-memory flood of a test sets off: a
// tunnel with queue management on runs its managed queues, flow by flow,
// and counts every packet, as the tests of the data path want.
const (
	lenientTarget   = 30 * time.Second
	lenientInterval = time.Minute
)

// newPair makes two tunnels, A (10.0.0.1, udp 192.0.2.1:51820) and B
// (10.0.0.2, 192.0.2.2:51820), peers of each other, on one in-memory
// network, and starts them. With dualStack, A is hostA and B hostB: each
// also has an IPv6 inner address, allowed to the other. Both are stopped in t.Cleanup, and the test
// fails if a goroutine outlives them.
func newPair(t testing.TB, o pairOpts) (a, b *end) {
	t.Helper()
	leakCheck(t)
	net := memudp.NewNetworkConfig(o.net)
	ka, kb := mustKey(t), mustKey(t)
	udpA := netip.MustParseAddrPort("192.0.2.1:51820")
	udpB := netip.MustParseAddrPort("192.0.2.2:51820")
	engineB := o.engineB
	if engineB == "" {
		engineB = o.engine
	}
	spec := func(key noise.PrivateKey, peer noise.PublicKey, local, remote netip.AddrPort, inner, allowed host, engine Engine, dev memtun.Config) tunnelSpec {
		return tunnelSpec{
			key: key, udp: local, inner: inner.v4,
			engine: engine, workers: o.workers, queue: o.queue, dev: dev, clock: o.clock, faults: o.faults, noInline: o.noInline, inlineMax: o.inlineMax, standNow: o.standNow, manage: o.manage, target: o.target, interval: o.interval,
			peers: []PeerConfig{{PublicKey: peer, Endpoint: remote, AllowedIPs: allowedIPs(allowed, o.dualStack)}},
		}
	}
	a = startTunnel(t, net, spec(ka, kb.Public(), udpA, udpB, hostA, hostB, o.engine, o.devA))
	b = startTunnel(t, net, spec(kb, ka.Public(), udpB, udpA, hostB, hostA, engineB, o.devB))
	return a, b
}

// allowedIPs is h's IPv4 address, and its IPv6 one with dualStack.
func allowedIPs(h host, dualStack bool) []netip.Prefix {
	if dualStack {
		return []netip.Prefix{netip.PrefixFrom(h.v4, 32), netip.PrefixFrom(h.v6, 128)}
	}
	return []netip.Prefix{netip.PrefixFrom(h.v4, 32)}
}

// tunnelSpec describes one tunnel for startTunnel.
type tunnelSpec struct {
	key     noise.PrivateKey // zero: a fresh one
	noKey   bool             // start without a private key (end.key is still made, for later)
	udp     netip.AddrPort
	inner   netip.Addr
	engine  Engine
	workers int
	queue   int
	peers   []PeerConfig
	dev     memtun.Config
	clock   clock.Clock // nil: the real clock
	faults  bool        // install a fault injector before Serve
	// noInline turns the pipeline's inline path off, before Serve;
	// inlineMax, if set, is its largest batch instead of the default.
	noInline  bool
	inlineMax int
	// standNow: a sequential loop drains a backlog in the kernel's queue
	// into the managed queue at once, not after QueueTarget (standing).
	standNow         bool
	manage           bool // queue management on (see pairOpts.manage)
	target, interval time.Duration
	// wrapUDP, if set, wraps the tunnel's memudp.Conn.
	wrapUDP func(*memudp.Conn) tunio.UDPConn
	// rebindable puts the tunnel on a tunio.RebindConn over memudp (end.conn
	// is then nil): SetListenPort works.
	rebindable bool
	log        *slog.Logger // nil: testLog
	// hsWorkers and hsBudget are Config.HandshakeWorkers and
	// HandshakeBudget (zero: the defaults).
	hsWorkers int
	hsBudget  HandshakeBudget
}

// startTunnel builds a tunnel on net as s says and serves it until
// t.Cleanup stops it; a non-nil error from Serve then fails the test
// (tests that expect one call stop themselves first).
func startTunnel(t testing.TB, net *memudp.Network, s tunnelSpec) *end {
	t.Helper()
	if s.key.IsZero() {
		s.key = mustKey(t)
	}
	var conn *memudp.Conn
	var udp tunio.UDPConn
	var err error
	if s.rebindable {
		udp, err = tunio.NewRebindConn(net.ListenFunc(s.udp.Addr()), s.udp.Port(), 0)
	} else {
		conn, err = net.Listen(s.udp)
		udp = conn
	}
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(s.dev)
	if err != nil {
		t.Fatal(err)
	}
	if s.wrapUDP != nil {
		udp = s.wrapUDP(conn)
	}
	if s.log == nil {
		s.log = testLog(t)
	}
	priv := s.key
	if s.noKey {
		priv = noise.PrivateKey{}
	}
	tun, err := New(Config{
		PrivateKey:        priv,
		Engine:            s.engine,
		Workers:           s.workers,
		QueueCapacity:     s.queue,
		Peers:             s.peers,
		NoQueueManagement: !s.manage,
		QueueTarget:       s.target,
		QueueInterval:     s.interval,

		HandshakeWorkers: s.hsWorkers,
		HandshakeBudget:  s.hsBudget,
	}, dev, udp, s.clock, s.log)
	if err != nil {
		t.Fatal(err)
	}
	if s.faults {
		tun.faults = &faultInjector{} // before Serve: the stages read it unsynchronised
	}
	switch { // before Serve, as faults
	case s.noInline:
		tun.inline.max.Store(0)
		tun.inline.fixed = true
	case s.inlineMax > 0 && tun.inline.limit() > 0:
		tun.inline.max.Store(int64(s.inlineMax))
		tun.inline.fixed = true
	}
	if s.standNow {
		tun.standAfter = 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &end{tun: tun, dev: dev, conn: conn, udp: udp.LocalAddr(), addr: s.inner, key: s.key, cancel: cancel, errc: make(chan error, 1)}
	go func() { e.errc <- tun.Serve(ctx) }()
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("tunnel stop: %v", err)
		}
	})
	return e
}

var errStopTimeout = errors.New("tunnel did not stop within 3 s")

// stop stops the tunnel and returns Serve's error; stopping twice is fine.
func (e *end) stop() error {
	e.cancel()
	select {
	case err, ok := <-e.errc:
		if ok {
			close(e.errc)
		}
		return err
	case <-time.After(3 * time.Second):
		return errStopTimeout
	}
}

// recv waits for the next packet the tunnel writes to its TUN device.
func (e *end) recv(t testing.TB, within time.Duration) []byte {
	t.Helper()
	select {
	case p := <-e.dev.Outbound():
		return append([]byte(nil), p.Bytes()...)
	case <-time.After(within):
		t.Fatalf("no packet within %v; stats:\n%s", within, fmtStats(e.tun.Stats()))
		return nil
	}
}

// expectNoPacket fails if the tunnel writes a packet to its TUN within d.
func (e *end) expectNoPacket(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case p := <-e.dev.Outbound():
		t.Fatalf("unexpected packet of %d bytes on the TUN; stats:\n%s", p.N, fmtStats(e.tun.Stats()))
	case <-time.After(d):
	}
}

// inject hands the tunnel's TUN device packets to send.
func (e *end) inject(t testing.TB, pkts ...[]byte) {
	t.Helper()
	if err := e.dev.InjectBatch(pkts); err != nil {
		t.Fatal(err)
	}
}

// leakCheck fails t if goroutines started after this call are still
// running when t's cleanups (registered later, so run earlier) are done.
func leakCheck(t testing.TB) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("goroutines left behind after the tunnels stopped: %v", err)
		}
	})
}

// stageStats returns the named stage's counters from a snapshot, or
// fails the test.
func stageStats(t testing.TB, ss []StageStats, name string) StageStats {
	t.Helper()
	for _, s := range ss {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q in stats:\n%s", name, fmtStats(ss))
	return StageStats{}
}

// dropsOf sums one drop reason over every stage.
func dropsOf(ss []StageStats, r DropReason) uint64 {
	var n uint64
	for _, s := range ss {
		n += s.Drops[r]
	}
	return n
}

// totalDrops sums every drop reason over every stage.
func totalDrops(ss []StageStats) uint64 {
	var n uint64
	for _, s := range ss {
		n += s.TotalDrops()
	}
	return n
}

// keepalivesIn sums the keepalives the inbound side received.
func keepalivesIn(ss []StageStats) uint64 {
	var n uint64
	for _, s := range ss {
		if s.Name == "route-in" || s.Name == "inbound" {
			n += s.Keepalives
		}
	}
	return n
}

// fmtStats prints a snapshot one stage a line, for failure messages.
func fmtStats(ss []StageStats) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %-10s x%d packets=%d bytes=%d queue=%d/%d restarts=%d keepalives=%d", s.Name, s.Instances,
			s.Packets, s.Bytes, s.QueueDepth, s.QueueCap, s.Restarts, s.Keepalives)
		for _, r := range DropReasons() {
			if v := s.Drops[r]; v > 0 {
				fmt.Fprintf(&b, " drop[%s]=%d", r, v)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// waitFor polls cond every millisecond until it holds, and fails the test
// with what() if it does not within d.
func waitFor(t testing.TB, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what())
		}
		time.Sleep(time.Millisecond)
	}
}

// realClock is clock.Real, for a tunnelSpec that wants the real clock
// where withRawPeer would give it a fake one.
type realClock = clock.Real

// fakeClock is a frozen protocol clock for a test: no timer fires unless
// the test advances it, so keepalives and handshake retries happen only
// when a test asks for them.
func fakeClock() *clock.Fake { return clock.NewFake(time.Now()) }

// firstPeer is the peer added first to tun, or nil.
func firstPeer(tun *Tunnel) *peer {
	for r := range tun.peers.Load().all() {
		return r.p
	}
	return nil
}
