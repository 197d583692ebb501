package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/bench/core"
	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// memLoad is a PipeGuard tunnel with in-memory ends and the loadgen's
// peer on the same in-memory network: the peer's protocol (handshake,
// sealing, counting, authenticating, answering) tested without root.
type memLoad struct {
	dev    *memtun.TUN
	peer   *loadPeer
	net    *memudp.Network
	tunnel netip.AddrPort
	inner  []byte        // the inbound load's inner packet
	wrong  atomic.Uint64 // TUN writes that were not that packet
}

var (
	memLoadTunnel = netip.MustParseAddrPort("192.0.2.1:51820")
	memLoadPeer   = netip.MustParseAddrPort("192.0.2.2:51820")
	memLoadInnerA = netip.MustParseAddr("10.202.0.1")
	memLoadInnerB = netip.MustParseAddr("10.202.0.2")
)

func newMemLoad(t *testing.T, engine stages.Engine) *memLoad {
	t.Helper()
	tunnelKey, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	peerKey, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	m := &memLoad{net: memudp.NewNetworkConfig(memudp.Config{Block: true}), tunnel: memLoadTunnel,
		inner: udp4Packet(memLoadInnerB, loadSink, loadInnerSize)}
	tconn, err := m.net.Listen(memLoadTunnel)
	if err != nil {
		t.Fatal(err)
	}
	pconn, err := m.net.Listen(memLoadPeer)
	if err != nil {
		t.Fatal(err)
	}
	m.dev, err = memtun.New(memtun.Config{OnWrite: func(p []byte) {
		if !bytes.Equal(p, m.inner) {
			m.wrong.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Queue management off: the tests count every datagram of a flood,
	// which a managed queue drops from once it stands above its target.
	tun, err := stages.New(stages.Config{PrivateKey: tunnelKey, Engine: engine, NoQueueManagement: true, Peers: []stages.PeerConfig{{
		PublicKey: peerKey.Public(), Endpoint: memLoadPeer, AllowedIPs: []netip.Prefix{netip.PrefixFrom(memLoadInnerB, 32)},
	}}}, m.dev, tconn, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tun.Serve(ctx) }()
	m.peer, err = newLoadPeer(pconn, memLoadTunnel, peerKey, tunnelKey.Public(), memLoadInnerB, loadSink)
	if err != nil {
		t.Fatal(err)
	}
	peerDone := make(chan error, 1)
	go func() { peerDone <- m.peer.serve() }()
	t.Cleanup(func() {
		pconn.Close()
		if err := <-peerDone; err != nil {
			t.Errorf("peer: %v", err)
		}
		cancel()
		if err := <-served; err != nil {
			t.Errorf("tunnel: %v", err)
		}
	})
	return m
}

// waitCount waits until f reaches want, for up to 5 s.
func waitCount(t *testing.T, what string, want uint64, f func() uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d", what, f(), want)
		}
		time.Sleep(time.Millisecond)
	}
	if got := f(); got != want {
		t.Fatalf("%s: %d, want %d", what, got, want)
	}
}

// TestLoadPeerMem runs the peer against each engine in memory: it
// completes a handshake as initiator; its inbound load is delivered to
// the TUN, every packet the inner packet it sealed; the tunnel's outbound
// packets are counted once each, one in loadSampleEvery authenticated;
// then a stream of forged datagrams of the right size and index is
// caught by the sample.
func TestLoadPeerMem(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, engine := range []stages.Engine{stages.EngineSequential, stages.EnginePipeline} {
		t.Run(string(engine), func(t *testing.T) {
			m := newMemLoad(t, engine)
			if err := m.peer.handshake(context.Background(), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			msgs := make([]tunio.Datagram, m.peer.conn.BatchSize())
			for range 3 {
				m.peer.sealInbound(msgs)
				if err := m.peer.conn.WriteBatch(msgs); err != nil {
					t.Fatal(err)
				}
			}
			waitCount(t, "inbound packets written to the TUN", uint64(3*len(msgs)), m.dev.Written)
			if w := m.wrong.Load(); w != 0 {
				t.Errorf("%d TUN writes were not the inbound load's packet", w)
			}

			const out = 200
			pkt := udp4Packet(memLoadInnerA, memLoadInnerB, loadInnerSize)
			for range out {
				if err := m.dev.Inject(pkt); err != nil {
					t.Fatal(err)
				}
			}
			waitCount(t, "outbound packets received", out, m.peer.data.Load)
			// Sampled: the 1st, 65th, 129th and 193rd.
			if s, f := m.peer.sampled.Load(), m.peer.forged.Load(); s != 4 || f != 0 {
				t.Errorf("sampled %d, forged %d; want 4, 0", s, f)
			}
			if err := m.peer.checkForged(); err != nil {
				t.Fatal(err)
			}

			// Forged: the right size and a session's index, but not sealed
			// with its key; a run of loadSampleEvery holds a sampled one.
			forger, err := m.net.Listen(netip.MustParseAddrPort("192.0.2.3:51820"))
			if err != nil {
				t.Fatal(err)
			}
			defer forger.Close()
			var fake wire.Packet
			copy(fake.Buf[wire.InnerOffset:], pkt)
			fake.InnerLen = loadInnerSize
			m.peer.kp.Load().SealTo(&fake, &fake, 1<<40) // our own send key: the tunnel would reject it too
			b := fake.Message()
			wire.TransportHeader{Receiver: m.peer.kp.Load().LocalIndex, Counter: 1 << 40}.Marshal(b)
			forged := make([]tunio.Datagram, loadSampleEvery)
			for i := range forged {
				forged[i] = tunio.Datagram{Buf: b, N: len(b), Addr: memLoadPeer}
			}
			if err := forger.WriteBatch(forged); err != nil {
				t.Fatal(err)
			}
			waitCount(t, "data messages counted", out+loadSampleEvery, m.peer.data.Load)
			if err := m.peer.checkForged(); !errors.Is(err, errLoadForged) {
				t.Errorf("forged datagrams: %v, want %v", err, errLoadForged)
			}
		})
	}
}

// TestLoadPeerAnswers: a tunnel that starts the handshake itself (as it
// does to rekey, or after sending without hearing back) gets an answer,
// and what it then sends on the new session is counted and authentic.
func TestLoadPeerAnswers(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) }) // runs after newMemLoad's cleanup
	m := newMemLoad(t, stages.EnginePipeline)
	// No handshake from the peer: the packet makes the tunnel initiate.
	if err := m.dev.Inject(udp4Packet(memLoadInnerA, memLoadInnerB, loadInnerSize)); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "outbound packets received", 1, m.peer.data.Load)
	if a, s, f := m.peer.answered.Load(), m.peer.sampled.Load(), m.peer.forged.Load(); a != 1 || s != 1 || f != 0 {
		t.Errorf("answered %d, sampled %d, forged %d; want 1, 1, 0", a, s, f)
	}
}

// TestUDP4Packet checks the load's inner packet: the sizes, and IP and
// UDP checksums that verify (the ones' complement sum over each,
// checksum included, is all ones).
func TestUDP4Packet(t *testing.T) {
	b := udp4Packet(memLoadInnerB, loadSink, loadInnerSize)
	if len(b) != loadInnerSize || b[0] != 0x45 || b[9] != 17 || int(b[2])<<8|int(b[3]) != loadInnerSize || int(b[24])<<8|int(b[25]) != loadInnerSize-20 {
		t.Fatalf("header % x", b[:28])
	}
	if s := core.OnesSum(0, b[:20]); s != 0xffff {
		t.Errorf("IP checksum does not verify: sum %#x", s)
	}
	pseudo := core.OnesSum(0, b[12:20])
	pseudo = core.OnesSum(pseudo, []byte{0, 17, b[24], b[25]})
	if s := core.OnesSum(pseudo, b[20:]); s != 0xffff {
		t.Errorf("UDP checksum does not verify: sum %#x", s)
	}
	if got := core.OnesSum(0, []byte{0xff, 0xff, 0x00, 0x01, 0x80}); got != 0x8001 { // carries wrap; an odd byte is the high half
		t.Errorf("OnesSum %#x", got)
	}
}
