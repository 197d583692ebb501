package memrig

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio/memtun"
	"pipeguard/wire"
)

// Addresses of the in-memory setup: the tunnel under test is "local", the
// harness plays the remote peer.
var (
	localUDP   = netip.MustParseAddrPort("192.0.2.1:51820")
	remoteUDP  = netip.MustParseAddrPort("192.0.2.2:51820")
	localInner = netip.MustParseAddr("10.0.0.1")
	// Remote inner addresses: each simulated peer gets 10.1.x.y.
	remoteInnerBase = [4]byte{10, 1, 0, 0}
)

// Options describes one in-memory tunnel under test.
type Options struct {
	Engine        stages.Engine
	Workers       int // 0: GOMAXPROCS
	QueueCapacity int
	PacketSize    int // inner IP packet size; 0: wire.MaxInnerSize
	Peers         int // simulated remote peers; 0: 1
}

func (o *Options) fill() {
	if o.PacketSize == 0 {
		o.PacketSize = wire.MaxInnerSize
	}
	if o.Peers == 0 {
		o.Peers = 1
	}
}

// Rig is one tunnel under test with in-memory ends, and the remote peers
// the harness plays. Make one with New, Close it when done.
type Rig struct {
	opts   Options
	tunnel *stages.Tunnel
	udp    *feedConn
	dev    *memtun.TUN
	cancel context.CancelFunc
	errc   chan error

	peers []*remotePeer

	// Outbound: the TUN source hands out this many more packets.
	outLeft          atomic.Int64
	outboundTemplate [][]byte // one packet per peer, cycled
	outNext          int
	// What reached the far ends.
	tunWritten goal // inner packets written to the TUN
	udpSent    goal // transport datagrams sent by the tunnel
	inSeq      uint32
}

// remotePeer is a peer the harness plays, with its keys and the session it
// completed with the tunnel.
type remotePeer struct {
	key    noise.PrivateKey
	static *noise.Static
	hs     *noise.Handshake
	index  noise.IndexTable
	kp     *noise.Keypair
	inner  netip.Addr
	addr   netip.AddrPort
}

// New starts a tunnel and completes a handshake with every simulated
// peer, the harness as initiator, and confirms each session with a
// keepalive so the tunnel can send on it too.
func New(o Options) (*Rig, error) {
	o.fill()
	r := &Rig{opts: o, errc: make(chan error, 1)}
	r.tunWritten.init()
	r.udpSent.init()
	localKey, err := noise.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	// Queue management off: the rig counts every packet of a flood that
	// never slows down, which is what a queue manager is there to drop
	// from once its queue stands above the target; in memory these
	// figures measure the engines' CPU per packet, lossless.
	cfg := stages.Config{PrivateKey: localKey, Engine: o.Engine, Workers: o.Workers, QueueCapacity: o.QueueCapacity,
		NoQueueManagement: true}
	for i := range o.Peers {
		k, err := noise.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		st, err := noise.NewStatic(k)
		if err != nil {
			return nil, err
		}
		inner := remoteInnerBase
		binary.BigEndian.PutUint16(inner[2:], uint16(i+1))
		p := &remotePeer{key: k, static: st, inner: netip.AddrFrom4(inner), addr: remoteUDP}
		p.hs, err = noise.NewHandshake(st, localKey.Public(), noise.PresharedKey{}, noise.PeerID(i+1))
		if err != nil {
			return nil, err
		}
		r.peers = append(r.peers, p)
		cfg.Peers = append(cfg.Peers, stages.PeerConfig{
			PublicKey:  k.Public(),
			Endpoint:   remoteUDP,
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(p.inner, 32)},
		})
		r.outboundTemplate = append(r.outboundTemplate, ipv4Packet(localInner, p.inner, o.PacketSize))
	}
	responses := make(chan []byte, o.Peers)
	r.udp = newFeedConn(localUDP, remoteUDP, func(b []byte) {
		if len(b) == wire.ResponseSize && b[0] == byte(wire.TypeResponse) {
			select {
			case responses <- append([]byte(nil), b...):
			default: // not one the harness waits for
			}
			return
		}
		if b[0] == byte(wire.TypeTransport) && len(b) > wire.MinTransportSize {
			r.udpSent.add()
		}
	})
	dev, err := memtun.New(memtun.Config{
		BatchSize: 128,
		Source:    r.outboundSource,
		OnWrite:   func([]byte) { r.tunWritten.add() },
	})
	if err != nil {
		return nil, err
	}
	r.dev = dev
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.tunnel, err = stages.New(cfg, dev, r.udp, nil, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.errc <- r.tunnel.Serve(ctx) }()
	if err := r.handshake(responses); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

var errHandshake = errors.New("bench: handshake with the tunnel did not complete")

func (r *Rig) handshake(responses chan []byte) error {
	for _, p := range r.peers {
		var msg wire.Initiation
		if err := p.hs.CreateInitiation(time.Now(), &p.index, &msg); err != nil {
			return err
		}
		var b [wire.InitiationSize]byte
		msg.Marshal(&b)
		r.udp.Feed([][]byte{b[:]})
		select {
		case resp := <-responses:
			_, kp, err := p.static.ConsumeResponse(resp, time.Now(), &p.index)
			if err != nil {
				return fmt.Errorf("%w: %v", errHandshake, err)
			}
			p.kp = kp
		case <-time.After(5 * time.Second):
			return errHandshake
		}
		// A keepalive confirms the session, so the tunnel may send on it.
		var ka wire.Packet
		if _, err := p.kp.Seal(&ka); err != nil {
			return err
		}
		r.udp.Feed([][]byte{append([]byte(nil), ka.Message()...)})
	}
	// Wait until the tunnel has taken every keepalive.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ka uint64
		for _, s := range r.tunnel.Stats() {
			if s.Name == "route-in" || s.Name == "inbound" {
				ka += s.Keepalives
			}
		}
		if ka >= uint64(len(r.peers)) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%w: keepalives not taken", errHandshake)
}

// SealInbound seals n inner packets, round-robin over the peers, as the
// remote peers would send them, and returns the datagrams.
func (r *Rig) SealInbound(n int) [][]byte {
	out := make([][]byte, n)
	r.SealInto(out, make([]byte, n*r.DatagramSize()))
	return out
}

// DatagramSize is the size of one sealed datagram of the rig's packet size.
func (r *Rig) DatagramSize() int {
	return wire.PaddedLen(r.opts.PacketSize) + wire.MinTransportSize
}

// SealInto seals len(out) inner packets like SealInbound, into backing
// (at least len(out)*DatagramSize() bytes), so a harness that runs in
// rounds reuses one buffer. Each call continues the peers' counters.
func (r *Rig) SealInto(out [][]byte, backing []byte) {
	size := r.DatagramSize()
	var pkt wire.Packet
	for i := range out {
		p := r.peers[int(r.inSeq)%len(r.peers)]
		FillIPv4(pkt.Buf[wire.InnerOffset:wire.InnerOffset+r.opts.PacketSize], p.inner, localInner, r.inSeq)
		r.inSeq++
		pkt.InnerLen = uint16(r.opts.PacketSize)
		if _, err := p.kp.Seal(&pkt); err != nil {
			panic(err) // a fresh keypair cannot be exhausted
		}
		out[i] = backing[i*size : i*size+int(pkt.MsgLen)]
		copy(out[i], pkt.Message())
	}
}

// RunInbound feeds the datagrams to the tunnel and waits until all their
// inner packets were written to the TUN device.
func (r *Rig) RunInbound(dgrams [][]byte) error {
	r.tunWritten.arm(uint64(len(dgrams)))
	r.feed(dgrams)
	return r.wait(&r.tunWritten)
}

// RunOutbound lets the TUN source hand out n packets and waits until the
// tunnel has sent all of them.
func (r *Rig) RunOutbound(n int) error {
	r.udpSent.arm(uint64(n))
	if err := r.startOutbound(n); err != nil {
		return err
	}
	return r.wait(&r.udpSent)
}

// RunBoth runs both directions at once: it feeds the datagrams in and
// lets the TUN source hand out n packets, and waits until every inner
// packet reached the TUN and every outbound one was sent.
func (r *Rig) RunBoth(dgrams [][]byte, n int) error {
	r.tunWritten.arm(uint64(len(dgrams)))
	r.udpSent.arm(uint64(n))
	if err := r.startOutbound(n); err != nil {
		return err
	}
	r.feed(dgrams)
	return r.wait(&r.tunWritten, &r.udpSent)
}

// feed hands the datagrams to the tunnel's UDP end from a goroutine, in
// chunks, as a kernel's receive queue would fill.
func (r *Rig) feed(dgrams [][]byte) {
	const chunk = 4096
	go func() {
		for i := 0; i < len(dgrams); i += chunk {
			r.udp.Feed(dgrams[i:min(i+chunk, len(dgrams))])
		}
	}()
}

// startOutbound lets the TUN source hand out n packets.
func (r *Rig) startOutbound(n int) error {
	if n <= 0 {
		return nil
	}
	// The TUN's reader is parked waiting for injected packets since the
	// source last had none: inject the first packet to wake it, and let
	// the source hand out the rest.
	r.outLeft.Store(int64(n - 1))
	return r.dev.Inject(r.outboundTemplate[0])
}

// goal counts the packets reaching one far end and signals when an armed
// count is reached. Its add runs on the tunnel's writing goroutine; arm
// and wait run on the harness's, between runs.
type goal struct {
	n      atomic.Uint64
	target atomic.Uint64
	done   chan struct{} // capacity 1: the target was reached
}

func (g *goal) init() { g.done = make(chan struct{}, 1) }

// arm expects k more packets.
func (g *goal) arm(k uint64) {
	select {
	case <-g.done: // a stale signal from an earlier run
	default:
	}
	g.target.Store(g.n.Load() + k)
	if k == 0 {
		g.done <- struct{}{}
	}
}

func (g *goal) add() {
	if g.n.Add(1) == g.target.Load() {
		select {
		case g.done <- struct{}{}:
		default:
		}
	}
}

var errStalled = errors.New("bench: tunnel stalled")

// wait returns when every goal was reached, the tunnel stopped, or no
// packet arrived for a whole second.
func (r *Rig) wait(goals ...*goal) error {
	progress := func() (v uint64) {
		for _, g := range goals {
			v += g.n.Load()
		}
		return v
	}
	last, lastChange := progress(), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for _, g := range goals {
		for waiting := true; waiting; {
			select {
			case <-g.done:
				waiting = false
			case err := <-r.errc:
				r.errc <- err // for Close
				return fmt.Errorf("bench: tunnel stopped: %v", err)
			case <-tick.C:
				// Stalled for a whole second: something is dropping packets.
				if v := progress(); v != last {
					last, lastChange = v, time.Now()
				} else if time.Since(lastChange) > time.Second {
					return fmt.Errorf("%w at %d of %d; stats %+v", errStalled, g.n.Load(), g.target.Load(), r.tunnel.Stats())
				}
			}
		}
	}
	return nil
}

// outboundSource is the TUN's Source: it copies the next peer's template
// packet while packets are left to hand out.
func (r *Rig) outboundSource(dst []byte) int {
	if r.outLeft.Load() <= 0 || r.outLeft.Add(-1) < 0 {
		return 0
	}
	t := r.outboundTemplate[r.outNext]
	r.outNext++
	if r.outNext == len(r.outboundTemplate) {
		r.outNext = 0
	}
	return copy(dst, t)
}

// Tunnel is the tunnel under test.
func (r *Rig) Tunnel() *stages.Tunnel { return r.tunnel }

// FeedFrom queues datagrams for the tunnel to read, dgrams[i] from
// from[i], unless the socket's queue is full: then it drops them, as a
// full receive buffer would, and returns false. It does not copy them.
func (r *Rig) FeedFrom(dgrams [][]byte, from []netip.AddrPort) bool {
	return r.udp.FeedFrom(dgrams, from)
}

// FedFromRead is how many of FeedFrom's datagrams the tunnel has read.
func (r *Rig) FedFromRead() uint64 { return r.udp.othersRead.Load() }

// Stats is the tunnel's stage counters.
func (r *Rig) Stats() []stages.StageStats { return r.tunnel.Stats() }

// Close stops the tunnel and waits for it.
func (r *Rig) Close() error {
	r.cancel()
	select {
	case err := <-r.errc:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("bench: tunnel did not stop")
	}
}

func ipv4Packet(src, dst netip.Addr, size int) []byte {
	b := make([]byte, size)
	FillIPv4(b, src, dst, 0)
	return b
}

// FillIPv4 writes a UDP-in-IPv4 packet filling b, with seq in its payload.
func FillIPv4(b []byte, src, dst netip.Addr, seq uint32) {
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 17
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[24:], uint16(len(b)-20))
	if len(b) >= 32 {
		binary.BigEndian.PutUint32(b[28:], seq)
	}
}
