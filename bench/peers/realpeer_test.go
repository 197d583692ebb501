package peers

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/bench/core"
	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// TestRealPeerInMemory: the real peer completes a handshake with a
// tunnel in memory, answers a ping that the tunnel's side sends it (the
// reply comes back out of the tunnel's TUN device with the addresses
// swapped and a valid checksum), and its stream arrives at the TUN.
func TestRealPeerInMemory(t *testing.T) {
	defer goleak.VerifyNone(t)
	net := memudp.NewNetwork()
	tunAddr, peerAddr := netip.MustParseAddrPort("10.201.0.1:51820"), netip.MustParseAddrPort("10.201.0.2:51900")
	tunConn, err := net.Listen(tunAddr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Listen(peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	tunKey, peerKey := mustKey(t), mustKey(t)
	inner, here := netip.MustParseAddr("10.202.0.2"), netip.MustParseAddr("10.202.0.1")
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tun, err := stages.New(stages.Config{PrivateKey: tunKey, Peers: []stages.PeerConfig{{PublicKey: peerKey.Public(),
		Endpoint: peerAddr, AllowedIPs: []netip.Prefix{netip.PrefixFrom(inner, 32)}}}}, dev, tunConn, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tun.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	p, err := newRealPeer(conn, tunAddr, peerKey, tunKey.Public(), inner, netip.MustParseAddr(streamSink))
	if err != nil {
		t.Fatal(err)
	}
	peerDone := make(chan error, 1)
	go func() { peerDone <- p.serve() }()
	defer func() {
		conn.Close()
		if err := <-peerDone; err != nil {
			t.Error(err)
		}
	}()
	if err := p.handshake(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	ping := icmpEcho(here, inner, 7)
	if err := dev.Inject(ping); err != nil {
		t.Fatal(err)
	}
	reply := nextPacket(t, dev)
	if len(reply) < len(ping) || reply[20] != 0 || netip.AddrFrom4([4]byte(reply[12:16])) != inner ||
		netip.AddrFrom4([4]byte(reply[16:20])) != here || binary.BigEndian.Uint16(reply[26:]) != 7 || core.OnesSum(0, reply[20:len(ping)]) != 0xffff {
		t.Fatalf("reply % x", reply)
	}
	// The peer counts an echo once its send returned, which may be
	// after the reply got here.
	for deadline := time.Now().Add(5 * time.Second); p.echoes.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if p.echoes.Load() != 1 {
		t.Fatalf("%d echoes answered", p.echoes.Load())
	}

	sent, err := p.stream(ctx, 100*time.Millisecond)
	if err != nil || sent == 0 {
		t.Fatalf("stream: %d sent, %v", sent, err)
	}
	for got := 0; got < 10; got++ {
		if pkt := nextPacket(t, dev); len(pkt) != streamInner || netip.AddrFrom4([4]byte(pkt[16:20])).String() != streamSink {
			t.Fatalf("stream packet of %d bytes to %v", len(pkt), pkt[16:20])
		}
	}
}

// icmpEcho is an ICMP echo request from src to dst with sequence seq.
func icmpEcho(src, dst netip.Addr, seq uint16) []byte {
	b := make([]byte, 20+8+56)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 1
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[10:], ^core.OnesSum(0, b[:20]))
	b[20] = 8
	binary.BigEndian.PutUint16(b[24:], 1)
	binary.BigEndian.PutUint16(b[26:], seq)
	binary.BigEndian.PutUint16(b[22:], ^core.OnesSum(0, b[20:]))
	return b
}

// nextPacket is the next packet the tunnel wrote to its TUN device.
func nextPacket(t *testing.T, dev *memtun.TUN) []byte {
	t.Helper()
	select {
	case p := <-dev.Outbound():
		return p.Bytes()
	case <-time.After(10 * time.Second):
		t.Fatal("nothing came out of the tunnel")
		return nil
	}
}

func mustKey(t *testing.T) noise.PrivateKey {
	t.Helper()
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
