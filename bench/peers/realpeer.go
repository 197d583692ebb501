package peers

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"pipeguard/bench/core"
	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// realPeer is the one peer of the tunnel under test that passes traffic,
// played by the harness with package noise, as the loadgen mode's peer
// is: it completes a handshake as initiator, answers the pings the
// tunnel's side sends it (so that ping measures the round trip through
// the tunnel: its routing among N peers, its sealing and opening), and
// sends a stream of full-size packets for the tunnel to open and deliver
// (its throughput among N peers).
//
// Make one with newRealPeer; serve runs on one goroutine until the conn
// is closed; handshake and stream are called from another, one at a time.
type realPeer struct {
	conn   tunio.UDPConn
	tunnel netip.AddrPort
	static *noise.Static
	hs     *noise.Handshake
	index  noise.IndexTable

	kp          atomic.Pointer[noise.Keypair] // the session we initiated
	established chan struct{}                 // capacity 1: a response completed our handshake

	inner netip.Addr // our address inside the tunnel: what the pings go to
	load  wire.Packet
	batch []wire.Packet

	echoes atomic.Uint64 // echo requests answered
	other  atomic.Uint64 // anything else received that was not a keepalive
}

// Sizes of the stream: full-size inner packets, IPv4 and UDP.
const (
	streamInner = wire.MaxInnerSize
	streamPort  = 9 // discard; the stream's destination is blackholed anyway
)

// newRealPeer makes the peer on conn with private key key, for the tunnel
// at tunnel whose public key is remote; inner is its address inside the
// tunnel, and the stream it sends goes from there to sink.
func newRealPeer(conn tunio.UDPConn, tunnel netip.AddrPort, key noise.PrivateKey, remote noise.PublicKey, inner, sink netip.Addr) (*realPeer, error) {
	st, err := noise.NewStatic(key)
	if err != nil {
		return nil, err
	}
	hs, err := noise.NewHandshake(st, remote, noise.PresharedKey{}, 1)
	if err != nil {
		return nil, err
	}
	p := &realPeer{conn: conn, tunnel: tunnel, static: st, hs: hs, established: make(chan struct{}, 1),
		inner: inner, batch: make([]wire.Packet, conn.BatchSize())}
	if err := p.load.SetInner(udp4(inner, sink, streamInner)); err != nil {
		return nil, err
	}
	return p, nil
}

// handshake initiates a session with the tunnel, trying again each second
// for up to timeout, then confirms it with a keepalive (the tunnel, the
// responder, may send on it only then). serve must be running.
func (p *realPeer) handshake(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var msg wire.Initiation
		if err := p.hs.CreateInitiation(time.Now(), &p.index, &msg); err != nil {
			return err
		}
		var b [wire.InitiationSize]byte
		msg.Marshal(&b)
		if err := p.send(b[:]); err != nil {
			return err
		}
		select {
		case <-p.established:
			var ka wire.Packet
			if _, err := p.kp.Load().Seal(&ka); err != nil {
				return err
			}
			return p.send(ka.Message())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Second, time.Until(deadline))):
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: the real peer got no handshake response within %v", core.ErrNetns, timeout)
		}
	}
}

// send sends one datagram to the tunnel (rare messages: it allocates).
func (p *realPeer) send(b []byte) error {
	return p.conn.WriteBatch([]tunio.Datagram{{Buf: b, N: len(b), Addr: p.tunnel}})
}

// stream sends full-size packets on our session, sealed as it goes and
// in batches, as fast as the socket takes them, for d, and returns how
// many it sent.
func (p *realPeer) stream(ctx context.Context, d time.Duration) (uint64, error) {
	kp := p.kp.Load()
	if kp == nil {
		return 0, fmt.Errorf("%w: the real peer has no session", core.ErrNetns)
	}
	msgs := make([]tunio.Datagram, len(p.batch))
	var sent uint64
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		for i := range msgs {
			c, err := kp.ReserveCounter()
			if err != nil {
				return sent, err
			}
			kp.SealTo(&p.batch[i], &p.load, c)
			msgs[i] = tunio.Datagram{Buf: p.batch[i].Buf[:p.batch[i].MsgLen], N: int(p.batch[i].MsgLen), Addr: p.tunnel}
		}
		if err := p.conn.WriteBatch(msgs); err != nil {
			return sent, err
		}
		sent += uint64(len(msgs))
	}
	return sent, ctx.Err()
}

// serve receives until the conn is closed, which is a clean return: it
// completes our handshake and answers pings.
func (p *realPeer) serve() error {
	msgs := make([]tunio.Datagram, p.conn.BatchSize())
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	var scratch wire.Packet
	for {
		n, err := p.conn.ReadBatch(msgs)
		if err != nil {
			if tunio.IsClosed(err) {
				return nil
			}
			return err
		}
		for _, m := range msgs[:n] {
			p.handle(&scratch, m.Buf[:m.N])
		}
	}
}

// handle is one datagram from the tunnel.
func (p *realPeer) handle(scratch *wire.Packet, b []byte) {
	typ, err := wire.PeekType(b)
	if err != nil {
		p.other.Add(1)
		return
	}
	switch typ {
	case wire.TypeResponse:
		if _, kp, err := p.static.ConsumeResponse(b, time.Now(), &p.index); err == nil {
			p.kp.Store(kp)
			select {
			case p.established <- struct{}{}:
			default:
			}
			return
		}
	case wire.TypeTransport:
		h, err := wire.ParseTransportHeader(b)
		if err != nil {
			break
		}
		e, ok := p.index.Lookup(h.Receiver)
		if !ok || e.Keypair == nil || scratch.SetMessage(b) != nil || e.Keypair.Open(scratch, h.Counter) != nil {
			break
		}
		if scratch.InnerLen == 0 {
			return // a keepalive
		}
		if p.answerPing(scratch, e.Keypair) {
			return
		}
	}
	p.other.Add(1)
}

// answerPing turns an ICMP echo request to us in pkt into its reply, in
// place, and sends it sealed under kp. It reports whether pkt was one.
func (p *realPeer) answerPing(pkt *wire.Packet, kp *noise.Keypair) bool {
	in := pkt.Inner()
	if len(in) < 28 || in[0] != 0x45 || in[9] != 1 || in[20] != 8 || netip.AddrFrom4([4]byte(in[16:20])) != p.inner {
		return false
	}
	var src [4]byte
	copy(src[:], in[12:16])
	copy(in[12:16], in[16:20])
	copy(in[16:20], src[:])
	in[20] = 0 // echo reply
	binary.BigEndian.PutUint16(in[22:], 0)
	binary.BigEndian.PutUint16(in[22:], ^core.OnesSum(0, in[20:]))
	if _, err := kp.Seal(pkt); err != nil {
		return false
	}
	if p.send(pkt.Message()) == nil {
		p.echoes.Add(1)
	}
	return true
}

// udp4 is an IPv4 UDP packet of size bytes from src to dst, with a valid
// header checksum (the receiving kernel checks it before it routes the
// packet) and a zero UDP checksum ("none", which IPv4 allows).
func udp4(src, dst netip.Addr, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(size))
	b[8], b[9] = 64, 17
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[10:], ^core.OnesSum(0, b[:20]))
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], streamPort)
	binary.BigEndian.PutUint16(b[24:], uint16(size-20))
	for i := 28; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}
