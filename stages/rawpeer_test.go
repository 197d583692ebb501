package stages

import (
	"net/netip"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// rawPeer plays a WireGuard peer of a tunnel by hand, with package noise
// and memudp sockets, so a test controls every datagram: it can replay
// them, forge them, send them from another address, or hold back a
// handshake response.
type rawPeer struct {
	t      testing.TB
	net    *memudp.Network
	key    noise.PrivateKey
	static *noise.Static
	hs     *noise.Handshake
	index  noise.IndexTable
	kp     *noise.Keypair // the session, once a handshake completed
	inner  host
	tunnel *end // the tunnel it talks to
	conn   *memudp.Conn
	rx     chan rxDgram // what its sockets received, in arrival order
	quit   chan struct{}
}

// rxDgram is a datagram a rawPeer socket received.
type rxDgram struct {
	b    []byte
	from netip.AddrPort
	on   netip.AddrPort // the socket that received it
}

// newRawPeer makes a peer of tun listening at addr with inner addresses
// inner, and returns it with the PeerConfig that tells the tunnel about it.
func newRawPeer(t testing.TB, net *memudp.Network, addr netip.AddrPort, inner host) (*rawPeer, PeerConfig) {
	t.Helper()
	p := &rawPeer{t: t, net: net, key: mustKey(t), inner: inner, rx: make(chan rxDgram, 4096), quit: make(chan struct{})}
	var err error
	if p.static, err = noise.NewStatic(p.key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(p.quit) })
	p.conn = p.listen(addr)
	return p, PeerConfig{PublicKey: p.key.Public(), Endpoint: addr,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(inner.v4, 32), netip.PrefixFrom(inner.v6, 128)}}
}

// attach points p at the tunnel e (whose public key it needs to handshake).
func (p *rawPeer) attach(e *end) {
	p.t.Helper()
	p.tunnel = e
	var err error
	if p.hs, err = noise.NewHandshake(p.static, e.key.Public(), noise.PresharedKey{}, 1); err != nil {
		p.t.Fatal(err)
	}
}

// listen opens another socket of p's, for roaming; what it receives goes
// to p.rx too. It is closed in t.Cleanup.
func (p *rawPeer) listen(addr netip.AddrPort) *memudp.Conn {
	p.t.Helper()
	c, err := p.net.Listen(addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	go func() {
		msgs := make([]tunio.Datagram, c.BatchSize())
		for i := range msgs {
			msgs[i].Buf = make([]byte, wire.MaxMessageSize)
		}
		for {
			n, err := c.ReadBatch(msgs)
			if err != nil {
				return
			}
			for _, m := range msgs[:n] {
				select {
				case p.rx <- rxDgram{b: append([]byte(nil), m.Buf[:m.N]...), from: m.Addr, on: c.LocalAddr()}:
				case <-p.quit:
					return
				}
			}
		}
	}()
	return c
}

// listenBare opens another socket of p's that nobody reads for p: the
// test reads it itself. It is closed in t.Cleanup.
func (p *rawPeer) listenBare(addr netip.AddrPort) *memudp.Conn {
	p.t.Helper()
	c, err := p.net.Listen(addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return c
}

// sendFrom sends datagrams from socket c to the tunnel.
func (p *rawPeer) sendFrom(c *memudp.Conn, dgrams ...[]byte) {
	p.t.Helper()
	msgs := make([]tunio.Datagram, len(dgrams))
	for i, d := range dgrams {
		msgs[i] = tunio.Datagram{Buf: d, N: len(d), Addr: p.tunnel.udp}
	}
	if err := c.WriteBatch(msgs); err != nil {
		p.t.Fatal(err)
	}
}

// send sends datagrams from p's first socket.
func (p *rawPeer) send(dgrams ...[]byte) { p.t.Helper(); p.sendFrom(p.conn, dgrams...) }

// recv returns the next datagram p received, or fails the test.
func (p *rawPeer) recv(within time.Duration) rxDgram {
	p.t.Helper()
	select {
	case d := <-p.rx:
		return d
	case <-time.After(within):
		p.t.Fatalf("peer %s: nothing from the tunnel within %v; tunnel stats:\n%s", p.inner.v4, within, fmtStats(p.tunnel.tun.Stats()))
		return rxDgram{}
	}
}

// expectNothing fails if p receives a datagram within d.
func (p *rawPeer) expectNothing(d time.Duration) {
	p.t.Helper()
	select {
	case got := <-p.rx:
		typ, _ := wire.PeekType(got.b)
		p.t.Fatalf("peer %s: unexpected datagram of type %d, %d bytes, on %s", p.inner.v4, typ, len(got.b), got.on)
	case <-time.After(d):
	}
}

// recvType returns the next datagram, which must be of type typ.
func (p *rawPeer) recvType(typ wire.MessageType, within time.Duration) rxDgram {
	p.t.Helper()
	d := p.recv(within)
	if got, err := wire.PeekType(d.b); err != nil || got != typ {
		p.t.Fatalf("peer %s: got a datagram of type %d (%v), %d bytes, want type %d", p.inner.v4, got, err, len(d.b), typ)
	}
	return d
}

// initiate runs a handshake with p as initiator, and confirms the session
// with a keepalive so the tunnel may send on it. It returns the keepalive
// datagram (counter 0).
func (p *rawPeer) initiate() []byte {
	p.t.Helper()
	p.sendInitiation()
	r := p.recvType(wire.TypeResponse, 5*time.Second)
	_, kp, err := p.static.ConsumeResponse(r.b, time.Now(), &p.index)
	if err != nil {
		p.t.Fatalf("ConsumeResponse: %v", err)
	}
	p.kp = kp
	ka := p.seal(nil)
	p.send(ka)
	waitFor(p.t, 5*time.Second, func() bool { return keepalivesIn(p.tunnel.tun.Stats()) > 0 },
		func() string { return "the tunnel took no keepalive\n" + fmtStats(p.tunnel.tun.Stats()) })
	return ka
}

// sendInitiation sends the tunnel a new handshake initiation from p,
// and nothing more.
func (p *rawPeer) sendInitiation() {
	p.t.Helper()
	var msg wire.Initiation
	if err := p.hs.CreateInitiation(time.Now(), &p.index, &msg); err != nil {
		p.t.Fatal(err)
	}
	var b [wire.InitiationSize]byte
	msg.Marshal(&b)
	p.send(b[:])
}

// respond answers the tunnel's next message, which must be an initiation,
// completing a handshake with the tunnel as initiator.
func (p *rawPeer) respond() {
	p.t.Helper()
	in := p.recvType(wire.TypeInitiation, 5*time.Second)
	h, err := p.static.ConsumeInitiation(in.b, time.Now(), func(pk noise.PublicKey) *noise.Handshake {
		if pk == p.tunnel.key.Public() {
			return p.hs
		}
		return nil
	})
	if err != nil {
		p.t.Fatalf("ConsumeInitiation: %v", err)
	}
	var msg wire.Response
	kp, err := h.CreateResponse(time.Now(), &p.index, &msg)
	if err != nil {
		p.t.Fatal(err)
	}
	p.kp = kp
	var b [wire.ResponseSize]byte
	msg.Marshal(&b)
	p.send(b[:])
}

// seal returns inner sealed as a transport datagram of p's session, with
// the session's next counter.
func (p *rawPeer) seal(inner []byte) []byte {
	p.t.Helper()
	var pkt wire.Packet
	if err := pkt.SetInner(inner); err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.kp.Seal(&pkt); err != nil {
		p.t.Fatal(err)
	}
	return append([]byte(nil), pkt.Message()...)
}

// open authenticates and decrypts a transport datagram from the tunnel and
// returns its inner packet without padding (nil for a keepalive) and its
// counter.
func (p *rawPeer) open(d []byte) ([]byte, uint64) {
	p.t.Helper()
	h, err := wire.ParseTransportHeader(d)
	if err != nil || h.Receiver != p.kp.LocalIndex {
		p.t.Fatalf("transport header %+v, %v; want receiver %d", h, err, p.kp.LocalIndex)
	}
	var pkt wire.Packet
	if err := pkt.SetMessage(d); err != nil {
		p.t.Fatal(err)
	}
	if err := p.kp.Open(&pkt, h.Counter); err != nil {
		p.t.Fatalf("open: %v", err)
	}
	if pkt.InnerLen == 0 {
		return nil, h.Counter
	}
	ip, err := wire.PeekIP(pkt.Inner())
	if err != nil {
		p.t.Fatalf("inner packet: %v", err)
	}
	return append([]byte(nil), pkt.Inner()[:ip.Len]...), h.Counter
}

// recvData returns the next transport datagram's inner packet, skipping
// keepalives, with the socket it arrived on.
func (p *rawPeer) recvData(within time.Duration) ([]byte, netip.AddrPort) {
	p.t.Helper()
	for {
		d := p.recvType(wire.TypeTransport, within)
		if inner, _ := p.open(d.b); inner != nil {
			return inner, d.on
		}
	}
}

// forged is a transport datagram to p's session with the given counter
// whose ciphertext is garbage: it fails authentication.
func (p *rawPeer) forged(counter uint64, innerLen int) []byte {
	b := make([]byte, wire.TransportHeaderSize+innerLen+wire.TagSize)
	wire.TransportHeader{Receiver: p.kp.RemoteIndex, Counter: counter}.Marshal(b)
	for i := wire.TransportHeaderSize; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// withRawPeer starts a tunnel (inner hostA, 192.0.2.1:51820, frozen fake
// clock) whose one peer is a rawPeer (inner hostB, 192.0.2.2:51820), plus
// any extra peers. No handshake has happened yet.
func withRawPeer(t *testing.T, s tunnelSpec, extra ...PeerConfig) (*end, *rawPeer) {
	t.Helper()
	leakCheck(t)
	return withRawPeerOn(t, memudp.NewNetworkConfig(blocking), s, extra...)
}

// withRawPeerOn is withRawPeer on a given network.
func withRawPeerOn(t *testing.T, net *memudp.Network, s tunnelSpec, extra ...PeerConfig) (*end, *rawPeer) {
	t.Helper()
	p, pc := newRawPeer(t, net, netip.MustParseAddrPort("192.0.2.2:51820"), hostB)
	s.udp = netip.MustParseAddrPort("192.0.2.1:51820")
	s.inner = hostA.v4
	if s.clock == nil {
		s.clock = fakeClock()
	}
	s.peers = append([]PeerConfig{pc}, extra...)
	e := startTunnel(t, net, s)
	p.attach(e)
	return e, p
}
