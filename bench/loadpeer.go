package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

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
// keepalive and the counters may be used from others; sealInbound from
// one goroutine at a time (the sender).
type loadPeer struct {
	conn   tunio.UDPConn
	tunnel netip.AddrPort // the tunnel's UDP address
	static *noise.Static
	remote noise.PublicKey
	hs     *noise.Handshake
	index  noise.IndexTable

	kp          atomic.Pointer[noise.Keypair] // the session we send on (we initiated it)
	established chan struct{}                 // capacity 1: a response completed our handshake

	// inbound is the inner packet the inbound load carries, sealed anew
	// for each datagram; ring holds one batch of sealed datagrams.
	inbound wire.Packet
	ring    []wire.Packet

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
		established: make(chan struct{}, 1), ring: make([]wire.Packet, conn.BatchSize())}
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
// from starting a handshake because it hears nothing back.
func (p *loadPeer) keepalive() error {
	kp := p.kp.Load()
	if kp == nil {
		return errLoadHandshake
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
func (p *loadPeer) sealInbound(msgs []tunio.Datagram) {
	kp := p.kp.Load()
	for i := range msgs {
		c, err := kp.ReserveCounter()
		if err != nil {
			panic(err) // 2^64 messages: unreachable in a benchmark's lifetime
		}
		pkt := &p.ring[i]
		kp.SealTo(pkt, &p.inbound, c)
		msgs[i] = tunio.Datagram{Buf: pkt.Buf[:pkt.MsgLen], N: int(pkt.MsgLen), Addr: p.tunnel}
	}
}

// serve receives until the conn is closed, which is a clean return.
func (p *loadPeer) serve() error {
	msgs := make([]tunio.Datagram, p.conn.BatchSize())
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	var scratch wire.Packet
	var lastIndex uint32
	var lastKP *noise.Keypair
	for {
		n, err := p.conn.ReadBatch(msgs)
		if err != nil {
			if tunio.IsClosed(err) {
				return nil
			}
			return err
		}
		for i := range msgs[:n] {
			b := msgs[i].Buf[:msgs[i].N]
			if len(b) < 4 {
				p.other.Add(1)
				continue
			}
			switch wire.MessageType(b[0]) {
			case wire.TypeTransport:
				h, err := wire.ParseTransportHeader(b)
				if err != nil {
					p.other.Add(1)
					continue
				}
				if h.Receiver != lastIndex || lastKP == nil {
					e, ok := p.index.Lookup(h.Receiver)
					if !ok || e.Keypair == nil {
						p.other.Add(1)
						continue
					}
					lastIndex, lastKP = h.Receiver, e.Keypair
				}
				switch len(b) {
				case wire.MinTransportSize:
					p.keepalives.Add(1)
				case loadMessageSize:
					if p.data.Add(1)%loadSampleEvery == 1 {
						p.sampled.Add(1)
						if !p.authentic(&scratch, lastKP, b, h.Counter) {
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
	fillIPv4(b, src, dst, 0)
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], loadSinkPort)
	for i := 28; i < size; i++ {
		b[i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[10:], ^onesSum(0, b[:20]))
	// The UDP checksum covers the pseudo-header: addresses, protocol, length.
	pseudo := onesSum(0, b[12:20])
	pseudo = onesSum(pseudo, []byte{0, 17, b[24], b[25]})
	sum := ^onesSum(pseudo, b[20:])
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(b[26:], sum)
	return b
}

// onesSum adds b, as big-endian 16-bit words, to the ones' complement sum.
func onesSum(sum uint16, b []byte) uint16 {
	s := uint32(sum)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Window bounds of the generator: how many packets it keeps in flight.
const (
	// windowStart and windowMax: milliseconds of the tunnel's work at up
	// to a million packets a second, so that its input never runs dry
	// while the generator sleeps (a millisecond at most), and well within
	// the tunnels' socket buffers (4 MiB for PipeGuard, 7 MiB for
	// wireguard-go, which the kernel doubles; a GSO batch of 64 datagrams
	// takes about 100 KiB of it).
	windowStart = 1024
	windowMax   = 2048
	windowMin   = 64
	// windowGrow is added each time the generator finds the window full
	// and nothing was dropped since it last looked: the window seeks the
	// most the path holds without loss.
	windowGrow = 8
	// stallAfter: when nothing is delivered for this long while the window
	// is full, what is in flight was lost where no counter sees it (inside
	// a tunnel), and is written off.
	stallAfter = 50 * time.Millisecond
)

// window bounds the packets the generator has in flight: sent minus
// delivered, dropped where a counter sees it, or written off. A blind
// flood over a veth pair never meets backpressure (the receiving socket
// drops the surplus in the sender's own system call), so it would burn a
// whole core on packets nobody takes; with the window the generator sends
// only what the tunnel consumes, and the tunnel never waits for input. The
// size shrinks when a counter shows drops (by an eighth, or by the drops
// if more) and by half after a stall, and grows by windowGrow when full
// while packets are delivered. The zero value is not usable:
// use newWindow. Used by one goroutine.
type window struct {
	size       uint64
	sent       uint64 // packets handed to the kernel
	done       uint64 // delivered + dropped + writtenOff, at the last look
	dropped    uint64 // at the last look
	writtenOff uint64
	preStall   uint64 // the size before the last stall halved it
	dropEvents uint64 // the kernel's count, for the report
	delivered  uint64 // at the last look
	shrunk     bool   // drops were seen at the last look
	progressed bool   // packets were delivered since the one before
	moved      time.Time
	stalls     int
}

func newWindow(now time.Time) window { return window{size: windowStart, moved: now} }

// room is how many packets may be sent now.
func (w *window) room() uint64 {
	if w.sent >= w.done+w.size {
		return 0
	}
	return w.done + w.size - w.sent
}

// look takes in fresh counts: delivered and dropped since the flood began.
func (w *window) look(delivered, dropped uint64, now time.Time) {
	w.shrunk, w.progressed = false, delivered > w.delivered
	w.delivered = delivered
	if dropped > w.dropped {
		// By an eighth, or by as many as were lost if more: a window far
		// too large for the path comes down in one step.
		cut := max(w.size/8, dropped-w.dropped)
		w.size = max(windowMin, w.size-min(cut, w.size))
		w.dropped, w.shrunk = dropped, true
	}
	d := delivered + dropped + w.writtenOff
	if d > w.sent { // written off too soon: they turned up after all
		// The stall was the tunnel waiting for a CPU, not loss: the
		// window had not been too large.
		w.size = max(w.size, w.preStall)
		w.writtenOff -= min(w.writtenOff, d-w.sent)
		d = min(delivered+dropped+w.writtenOff, w.sent) // drops are estimates: never more done than sent
	}
	if d != w.done {
		w.done, w.moved = d, now
	}
}

// full is called after each look, which the window being full prompted:
// the window grows when packets were delivered and none dropped since the
// look before; when nothing moved for stallAfter, what is in flight is
// written off.
func (w *window) full(now time.Time) {
	if now.Sub(w.moved) >= stallAfter {
		w.writtenOff += w.sent - w.done
		w.done, w.moved = w.sent, now
		w.preStall, w.size = w.size, max(windowMin, w.size/2)
		w.stalls++
		return
	}
	if w.progressed && !w.shrunk {
		w.size = min(windowMax, w.size+windowGrow)
	}
}

// Pacing of the generator when the window is full: it sleeps this long
// before it looks again (the runtime's timers make it up to a
// millisecond), which at a few hundred thousand packets a second frees
// room for a batch or more, and drains far less than the window.
const floodPause = 500 * time.Microsecond

// floodMinSend is the least room worth a system call.
const floodMinSend = 32

// flood is one direction's generator: it fills batches and sends them as
// fast as the window allows. The counters may be read by other goroutines
// while run runs.
type flood struct {
	conn tunio.UDPConn
	segs uint64                      // datagrams per kernel packet: a GSO run's, or 1
	fill func(msgs []tunio.Datagram) // prepares len(msgs) datagrams
	// count reads the packets delivered and the kernel's drop events
	// since the flood began. A drop event may be a whole GSO run (the
	// kernel counts a super-packet it drops once), so run turns events
	// into packets at the datagrams per kernel packet it sent.
	count func() (delivered, drops uint64, err error)
	sleep func(time.Duration) // time.Sleep; tests pass a fake
	now   func() time.Time    // time.Now; tests set a fake
	msgs  []tunio.Datagram

	mu     sync.Mutex // guards stats, which run updates and snapshot reads
	stats  floodStats
	runErr error
}

// floodStats is what a flood did so far.
type floodStats struct {
	Sent       uint64
	Drops      uint64        // drop events the kernel counted
	Wait       time.Duration // spent waiting on a full window
	WrittenOff uint64
	Stalls     int
	Window     uint64
}

// gsoSegments is the most datagrams tunio puts in one GSO send (the
// kernel's UDP_MAX_SEGMENTS on the kernels we meet).
const gsoSegments = 64

func newFlood(conn tunio.UDPConn, batch int, fill func([]tunio.Datagram), count func() (uint64, uint64, error), sleep func(time.Duration)) *flood {
	f := &flood{conn: conn, segs: 1, fill: fill, count: count, sleep: sleep, now: time.Now, msgs: make([]tunio.Datagram, batch)}
	if o, ok := conn.(tunio.UDPOffloads); ok {
		if gso, _ := o.Offloads(); gso {
			f.segs = gsoSegments
		}
	}
	return f
}

// run sends until ctx ends or sending fails.
func (f *flood) run(ctx context.Context) error {
	done := ctx.Done()
	w := newWindow(f.now())
	var units, drops uint64 // kernel packets sent; drop events seen
	for {
		select {
		case <-done:
			return nil
		default:
		}
		room := w.room()
		if room < floodMinSend {
			delivered, d, err := f.count()
			if err != nil {
				return err
			}
			drops, w.dropEvents = d, d
			now := f.now()
			w.look(delivered, drops*w.sent/max(units, 1), now)
			w.full(now)
			if room = w.room(); room < floodMinSend {
				f.sleep(floodPause)
				f.note(&w, f.now().Sub(now))
				continue
			}
		}
		n := int(min(room, uint64(len(f.msgs))))
		f.fill(f.msgs[:n])
		if err := f.conn.WriteBatch(f.msgs[:n]); err != nil {
			if tunio.IsClosed(err) && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bench: loadgen: send: %w", err)
		}
		w.sent += uint64(n)
		units += (uint64(n) + f.segs - 1) / f.segs
		f.note(&w, 0)
	}
}

func (f *flood) note(w *window, waited time.Duration) {
	f.mu.Lock()
	f.stats.Sent, f.stats.WrittenOff, f.stats.Stalls, f.stats.Window = w.sent, w.writtenOff, w.stalls, w.size
	f.stats.Drops = w.dropEvents
	f.stats.Wait += waited
	f.mu.Unlock()
}

func (f *flood) snapshot() floodStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}
