package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"pipeguard/noise"
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

// end is one tunnel of a test with its in-memory TUN and UDP.
type end struct {
	tun    *Tunnel
	dev    *memtun.TUN
	addr   netip.Addr // inner address
	key    noise.PrivateKey
	cancel context.CancelFunc
	errc   chan error
}

func mustKey(t testing.TB) noise.PrivateKey {
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pairOpts tunes newPair.
type pairOpts struct {
	engine  Engine
	workers int
	queue   int
	devA    memtun.Config
	devB    memtun.Config
}

// newPair makes two tunnels, A (10.0.0.1, udp 192.0.2.1:51820) and B
// (10.0.0.2, 192.0.2.2:51820), peers of each other, on one in-memory
// network, and starts them. Both are stopped in t.Cleanup.
func newPair(t testing.TB, o pairOpts) (a, b *end) {
	t.Helper()
	net := memudp.NewNetwork()
	ka, kb := mustKey(t), mustKey(t)
	udpA := netip.MustParseAddrPort("192.0.2.1:51820")
	udpB := netip.MustParseAddrPort("192.0.2.2:51820")
	a = startEnd(t, net, ka, kb.Public(), udpA, udpB, netip.MustParseAddr("10.0.0.1"), "10.0.0.2/32", o, o.devA)
	b = startEnd(t, net, kb, ka.Public(), udpB, udpA, netip.MustParseAddr("10.0.0.2"), "10.0.0.1/32", o, o.devB)
	return a, b
}

func startEnd(t testing.TB, net *memudp.Network, key noise.PrivateKey, peerKey noise.PublicKey, local, remote netip.AddrPort, inner netip.Addr, allowed string, o pairOpts, devCfg memtun.Config) *end {
	t.Helper()
	conn, err := net.Listen(local)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(devCfg)
	if err != nil {
		t.Fatal(err)
	}
	tun, err := New(Config{
		PrivateKey:    key,
		Engine:        o.engine,
		Workers:       o.workers,
		QueueCapacity: o.queue,
		Peers: []PeerConfig{{
			PublicKey:  peerKey,
			Endpoint:   remote,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix(allowed)},
		}},
	}, dev, conn, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &end{tun: tun, dev: dev, addr: inner, key: key, cancel: cancel, errc: make(chan error, 1)}
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
		t.Fatalf("no packet within %v; stats: %+v", within, e.tun.Stats())
		return nil
	}
}
