package stages

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"pipeguard/supervisor"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// The edge steps: what both engines do at the TUN device and the UDP
// socket, around the per-packet steps.

// edgeErr is what a stage's Serve returns for err from the TUN device or
// the UDP socket: nil when the device or socket was closed or ctx has
// ended (the tunnel is stopping, not failing), else err, for the
// supervisor to restart the stage.
func edgeErr(ctx context.Context, err error) error {
	if tunio.IsClosed(err) || ctx.Err() != nil {
		return nil
	}
	return err
}

// handshakeMsg is a handshake message on its way to the handshake workers.
// Initiations are the largest handshake message.
type handshakeMsg struct {
	buf   [wire.InitiationSize]byte
	n     int
	src   netip.AddrPort
	local tunio.Local // the host's address it was sent to
}

// classifyInbound looks at a datagram's type: transport messages go on to
// decryption (it returns true); handshake messages are copied to the
// handshake queue, or dropped and counted if it is full, so that a flood of
// them never blocks data; anything else is dropped and counted.
func (t *Tunnel) classifyInbound(it *inItem, handshakes chan<- handshakeMsg, c *stageCounters) bool {
	msg := it.pkt.Message()
	typ, err := wire.PeekType(msg)
	if err != nil {
		c.drop(DropMalformed)
		return false
	}
	switch typ {
	case wire.TypeTransport:
		return true
	case wire.TypeInitiation, wire.TypeResponse, wire.TypeCookieReply:
		if len(msg) > wire.InitiationSize {
			c.drop(DropMalformed)
			return false
		}
		var hm handshakeMsg
		hm.n = copy(hm.buf[:], msg)
		hm.src, hm.local = it.src, it.local
		select {
		case handshakes <- hm:
		default:
			c.drop(DropQueueFull)
		}
		return false
	default:
		c.drop(DropMalformed)
		return false
	}
}

// errDeviceGone is what a stage returns when the TUN device's interface
// was deleted: no restart can bring it back, so it stops the whole
// tunnel, and Serve's error says why (errors.Is tunio.ErrDeviceGone).
var errDeviceGone = fmt.Errorf("%w: %w", supervisor.ErrTerminateTree, tunio.ErrDeviceGone)

// writeTUN writes a batch of inner packets (bufs[i][wire.InnerOffset:])
// to the device. A packet the device refuses is dropped and counted; only
// a closed or deleted device is an error.
func (t *Tunnel) writeTUN(dev tunio.Device, bufs [][]byte, c *stageCounters) error {
	n, err := dev.Write(bufs, wire.InnerOffset)
	if err != nil {
		if tunio.IsClosed(err) {
			return err
		}
		if errors.Is(err, tunio.ErrDeviceGone) {
			return errDeviceGone
		}
		c.drops[DropWriteError].Add(uint64(len(bufs) - n))
		t.logLimited.warn("tun write failed", "err", err)
	}
	for _, b := range bufs[:n] {
		c.pass(len(b) - wire.InnerOffset)
	}
	return nil
}

// readTUN reads a batch of inner packets from the device, each into
// bufs[i][wire.InnerOffset:], and returns how many it read; pass each to
// tunPacketStep with its size. A segmentation-offloaded super-packet with
// more segments than bufs is lost (the device keeps the segments that
// fit): that is counted as DropReadError and reading goes on. Other errors
// are returned.
func (t *Tunnel) readTUN(dev tunio.Device, bufs [][]byte, sizes []int, c *stageCounters) (int, error) {
	n, err := dev.Read(bufs, sizes, wire.InnerOffset)
	if errors.Is(err, tunio.ErrPacketTooBig) {
		// The interface's MTU is above 1280 (linkwatch sets it back).
		c.drop(DropTooBig)
		return n, nil
	}
	if err != nil {
		if !errors.Is(err, tunio.ErrTooManySegments) {
			if n > 0 {
				return n, nil // the error comes back on the next read
			}
			if errors.Is(err, tunio.ErrDeviceGone) {
				return 0, errDeviceGone
			}
			return 0, err
		}
		c.drop(DropReadError)
		t.logLimited.warn("tun read lost an offloaded packet larger than the batch", "buffers", len(bufs), "err", err)
	}
	return n, nil
}

// tunPacketStep readies one packet read from the device for routing. A
// packet larger than the tunnel MTU is marked dropped, counted as
// DropTooBig, and false returned: whether the device reports its whole
// size (the buffer holds its head) or, as a TUN without offloads does,
// cuts it to the buffer (then its IP header gives it away).
func tunPacketStep(it *outItem, size int, c *stageCounters) bool {
	it.peer, it.kp, it.drop = nil, nil, dropNone
	if size > wire.MaxInnerSize || size == wire.MaxInnerSize && cutShort(it.pkt.Buf[wire.InnerOffset:wire.InnerOffset+size]) {
		it.drop = DropTooBig
		c.drop(DropTooBig)
		return false
	}
	it.pkt.InnerLen = uint16(size)
	return true
}

// sendDatagrams sends a batch of sealed datagrams; peers[i] is the peer of
// msgs[i]. A batch the socket refuses is counted as dropped; only a closed
// socket is an error. A datagram whose local address the kernel refused
// (the host no longer has it; it went from the address routing picks)
// makes its peer forget that address.
func (t *Tunnel) sendDatagrams(msgs []tunio.Datagram, peers []*peer, c *stageCounters) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := t.udpOut.WriteBatch(msgs); err != nil {
		if tunio.IsClosed(err) {
			return err
		}
		for i := range msgs {
			if msgs[i].LocalGone {
				t.localGone(peers[i], msgs[i].Local)
			}
		}
		c.drops[DropSendError].Add(uint64(len(msgs)))
		t.logLimited.warn("udp send failed", "err", err)
		return nil
	}
	for i := range msgs {
		c.pass(msgs[i].N)
		if msgs[i].LocalGone {
			t.localGone(peers[i], msgs[i].Local)
		}
	}
	return nil
}

// localGone makes p send from the address routing picks, if it still sends
// from local, which the kernel just refused as a source.
func (t *Tunnel) localGone(p *peer, local tunio.Local) {
	p.forgetLocal(local)
	t.logLimited.debug("local address gone; sending from the address routing picks", "peer", p.name(), "local", local)
}

// datagramOf is the sealed datagram of an outbound packet, ready to send.
func datagramOf(it *outItem) tunio.Datagram {
	return tunio.Datagram{Buf: it.pkt.Buf[:], N: int(it.pkt.MsgLen), Addr: it.dst, Local: it.local, ECN: uint8(it.ecn)}
}

// lockedWriter serialises WriteBatch calls on one socket: udpsend's data
// batches and the control path's handshake messages and keepalives share
// it, and a UDPConn allows one writer at a time. The data path holds the
// lock for one system call per batch, so the lock costs little.
type lockedWriter struct {
	mu   sync.Mutex // guards conn's write side
	conn tunio.UDPConn
}

func (w *lockedWriter) WriteBatch(msgs []tunio.Datagram) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn.WriteBatch(msgs)
}
