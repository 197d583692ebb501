package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/memrig"
	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// The load generator's far end (loadgen mode): the harness plays the peer
// of the tunnel under test itself, with package noise, so that the far end
// costs almost nothing. It is written against tunio.UDPConn, so the same
// code runs over a real socket in a namespace and over memudp in tests.

// Sizes of the load: full-size inner packets, IPv4 and UDP.
const (
	loadInnerSize   = wire.MaxInnerSize                                       // 1280, the tunnel MTU
	loadHeaderSize  = 20 + 8                                                  // IPv4 and UDP headers of an inner packet
	loadPayloadSize = loadInnerSize - loadHeaderSize                          // 1252 bytes of UDP payload
	loadMessageSize = wire.TransportHeaderSize + loadInnerSize + wire.TagSize // 1312: one sealed inner packet
	// loadSampleEvery is how often the receiver authenticates a data
	// message it counts: one in this many. Opening costs as much as the
	// tunnel's sealing, so all of them would make the receiver as dear as
	// the tunnel; a sample still catches anything that is not the tunnel's
	// traffic under our session.
	loadSampleEvery = 64
	// loadSinkPort is the inner packets' UDP destination port (discard).
	loadSinkPort = 9
)

// Errors of the load generator's peer.
var (
	errLoadHandshake = errors.New("bench: loadgen: no handshake with the tunnel under test")
	errLoadForged    = errors.New("bench: loadgen: sampled datagrams failed authentication")
)

// loadPeer is the far end of the tunnel under test as the load generator
// plays it: it completes a handshake as initiator and seals inbound load
// with the session; serve receives what the tunnel sends, counts the data
// messages of full size under any of our sessions, authenticates one in
// loadSampleEvery of them, and answers handshakes the tunnel starts itself
// (a rekey), so that a mid-run handshake does not break the count.
//
// Make one with newLoadPeer. serve runs on one goroutine; handshake,
// keepalive and the counters may be used from others; sealInbound,
// presealInbound and a ring's fill from one goroutine at a time (the
// sender).
type loadPeer struct {
	conn   tunio.UDPConn
	tunnel netip.AddrPort // the tunnel's UDP address
	static *noise.Static
	remote noise.PublicKey
	hs     *noise.Handshake
	index  noise.IndexTable

	kp          atomic.Pointer[noise.Keypair] // the session we send on (we initiated it)
	established chan struct{}                 // capacity 1: a response completed our handshake

	// mu guards hold: while a pre-sealed ring is in use, keepalives are
	// not sent (presealInbound says why).
	mu   sync.Mutex
	hold bool

	// inbound is the inner packet the inbound load carries; batch holds
	// one batch of it sealed on the fly.
	inbound wire.Packet
	batch   []wire.Packet

	// What serve counted.
	data       atomic.Uint64 // full-size data messages under one of our sessions
	sampled    atomic.Uint64 // of them, authenticated
	forged     atomic.Uint64 // sampled ones that failed authentication or were not our load
	keepalives atomic.Uint64
	answered   atomic.Uint64 // handshakes the tunnel initiated, answered
	other      atomic.Uint64 // anything else: unknown index, other sizes, cookie replies
}

// newLoadPeer makes the peer on conn, with private key key, for the tunnel
// at tunnel whose public key is remote. inboundSrc and inboundDst are the
// inner addresses of the inbound load.
func newLoadPeer(conn tunio.UDPConn, tunnel netip.AddrPort, key noise.PrivateKey, remote noise.PublicKey, inboundSrc, inboundDst netip.Addr) (*loadPeer, error) {
	st, err := noise.NewStatic(key)
	if err != nil {
		return nil, err
	}
	hs, err := noise.NewHandshake(st, remote, noise.PresharedKey{}, 1)
	if err != nil {
		return nil, err
	}
	p := &loadPeer{conn: conn, tunnel: tunnel, static: st, remote: remote, hs: hs,
		established: make(chan struct{}, 1), batch: make([]wire.Packet, conn.BatchSize())}
	if err := p.inbound.SetInner(udp4Packet(inboundSrc, inboundDst, loadInnerSize)); err != nil {
		return nil, err
	}
	return p, nil
}

// handshake initiates a session with the tunnel and waits for it, trying
// again each second for up to timeout; then it confirms the session with a
// keepalive, so that the tunnel (the responder) may send on it. serve must
// be running.
func (p *loadPeer) handshake(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select { // a stale signal from an earlier handshake
		case <-p.established:
		default:
		}
		var msg wire.Initiation
		if err := p.hs.CreateInitiation(time.Now(), &p.index, &msg); err != nil {
			return err
		}
		var b [wire.InitiationSize]byte
		msg.Marshal(&b)
		if err := p.send(b[:]); err != nil {
			return err
		}
		wait := min(time.Second, time.Until(deadline))
		select {
		case <-p.established:
			return p.keepalive()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w within %v (received: %d data, %d keepalives, %d other)",
				errLoadHandshake, timeout, p.data.Load(), p.keepalives.Load(), p.other.Load())
		}
	}
}

// keepalive sends an empty transport message on our session: it confirms
// a new session, and it keeps a tunnel that only sends (outbound load)
// from starting a handshake because it hears nothing back. While a
// pre-sealed ring is in use it sends nothing.
func (p *loadPeer) keepalive() error {
	kp := p.kp.Load()
	if kp == nil {
		return errLoadHandshake
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold {
		return nil
	}
	var ka wire.Packet
	if _, err := kp.Seal(&ka); err != nil {
		return err
	}
	return p.send(ka.Message())
}

// send sends one datagram to the tunnel; for the rare messages only (it
// allocates).
func (p *loadPeer) send(b []byte) error {
	return p.conn.WriteBatch([]tunio.Datagram{{Buf: b, N: len(b), Addr: p.tunnel}})
}

// sealInbound fills msgs with datagrams of inbound load, each the inner
// packet sealed under the next counter of our session. len(msgs) is at
// most the conn's batch size.
func (p *loadPeer) sealInbound(msgs []tunio.Datagram) { p.sealInboundWith(p.kp.Load(), msgs) }

// sealInboundWith is sealInbound under the session kp.
func (p *loadPeer) sealInboundWith(kp *noise.Keypair, msgs []tunio.Datagram) {
	for i := range msgs {
		c, err := kp.ReserveCounter()
		if err != nil {
			panic(err) // 2^64 messages: unreachable in a benchmark's lifetime
		}
		pkt := &p.batch[i]
		kp.SealTo(pkt, &p.inbound, c)
		msgs[i] = tunio.Datagram{Buf: pkt.Buf[:pkt.MsgLen], N: int(pkt.MsgLen), Addr: p.tunnel}
	}
}

// viewReader is a conn that hands received datagrams over in place,
// without copying them into the caller's buffers (rawudp.Conn).
type viewReader interface {
	ReadViews(fn func(b []byte, from netip.AddrPort)) (int, error)
}

// serve receives until the conn is closed, which is a clean return.
func (p *loadPeer) serve() error {
	var st serveState
	if v, ok := p.conn.(viewReader); ok {
		handle := func(b []byte, _ netip.AddrPort) { p.handle(&st, b) }
		for {
			if _, err := v.ReadViews(handle); err != nil {
				if tunio.IsClosed(err) {
					return nil
				}
				return err
			}
		}
	}
	msgs := make([]tunio.Datagram, p.conn.BatchSize())
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	for {
		n, err := p.conn.ReadBatch(msgs)
		if err != nil {
			if tunio.IsClosed(err) {
				return nil
			}
			return err
		}
		for i := range msgs[:n] {
			p.handle(&st, msgs[i].Buf[:msgs[i].N])
		}
	}
}

// serveState is what serve keeps between datagrams: the session of the
// last data message (a lookup spared for each of a run), and a packet to
// open samples in.
type serveState struct {
	scratch   wire.Packet
	lastIndex uint32
	lastKP    *noise.Keypair
}

// handle counts, samples or answers one received datagram.
func (p *loadPeer) handle(st *serveState, b []byte) {
	if len(b) < 4 {
		p.other.Add(1)
		return
	}
	switch wire.MessageType(b[0]) {
	case wire.TypeTransport:
		h, err := wire.ParseTransportHeader(b)
		if err != nil {
			p.other.Add(1)
			return
		}
		if h.Receiver != st.lastIndex || st.lastKP == nil {
			e, ok := p.index.Lookup(h.Receiver)
			if !ok || e.Keypair == nil {
				p.other.Add(1)
				return
			}
			st.lastIndex, st.lastKP = h.Receiver, e.Keypair
		}
		switch len(b) {
		case wire.MinTransportSize:
			p.keepalives.Add(1)
		case loadMessageSize:
			if p.data.Add(1)%loadSampleEvery == 1 {
				p.sampled.Add(1)
				if !p.authentic(&st.scratch, st.lastKP, b, h.Counter) {
					p.forged.Add(1)
				}
			}
		default:
			p.other.Add(1)
		}
	case wire.TypeResponse:
		if _, kp, err := p.static.ConsumeResponse(b, time.Now(), &p.index); err == nil {
			p.kp.Store(kp)
			select {
			case p.established <- struct{}{}:
			default:
			}
		} else {
			p.other.Add(1)
		}
	case wire.TypeInitiation:
		p.answer(b)
	case wire.TypeCookieReply:
		noise.ConsumeCookieReply(b, time.Now(), &p.index)
		p.other.Add(1)
	default:
		p.other.Add(1)
	}
}

// authentic opens the data message b with kp into scratch and checks that
// it carries the outbound load: a full-size IPv4 UDP packet.
func (p *loadPeer) authentic(scratch *wire.Packet, kp *noise.Keypair, b []byte, counter uint64) bool {
	if scratch.SetMessage(b) != nil || kp.Open(scratch, counter) != nil {
		return false
	}
	in := scratch.Inner()
	return len(in) == loadInnerSize && in[0] == 0x45 && int(binary.BigEndian.Uint16(in[2:])) == loadInnerSize && in[9] == 17
}

// answer responds to a handshake the tunnel initiated (it does when it
// has sent for a while and heard nothing, or when its session ages). The
// new session receives at once; we keep sending on ours, which the tunnel
// still accepts as its previous one.
func (p *loadPeer) answer(b []byte) {
	now := time.Now()
	h, err := p.static.ConsumeInitiation(b, now, func(k noise.PublicKey) *noise.Handshake {
		if k.Equal(p.remote) {
			return p.hs
		}
		return nil
	})
	if err != nil {
		p.other.Add(1)
		return
	}
	var msg wire.Response
	if _, err := h.CreateResponse(now, &p.index, &msg); err != nil {
		p.other.Add(1)
		return
	}
	var out [wire.ResponseSize]byte
	msg.Marshal(&out)
	if p.send(out[:]) == nil {
		p.answered.Add(1)
	}
}

// checkForged fails when a sampled data message failed authentication.
func (p *loadPeer) checkForged() error {
	if f := p.forged.Load(); f > 0 {
		return fmt.Errorf("%w: %d of %d sampled", errLoadForged, f, p.sampled.Load())
	}
	return nil
}

// udp4Packet returns an IPv4 UDP packet of size bytes from src to dst
// (port 40000 to loadSinkPort) with valid IP and UDP checksums, as a real
// sender's would be: offloads and the kernel may check them.
func udp4Packet(src, dst netip.Addr, size int) []byte {
	b := make([]byte, size)
	memrig.FillIPv4(b, src, dst, 0)
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], loadSinkPort)
	for i := 28; i < size; i++ {
		b[i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[10:], ^core.OnesSum(0, b[:20]))
	// The UDP checksum covers the pseudo-header: addresses, protocol, length.
	pseudo := core.OnesSum(0, b[12:20])
	pseudo = core.OnesSum(pseudo, []byte{0, 17, b[24], b[25]})
	sum := ^core.OnesSum(pseudo, b[20:])
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(b[26:], sum)
	return b
}
