package stages

import (
	"sync"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// answeringConn lets a test complete a handshake while the tunnel is
// still inside the write of its initiation: WriteBatch sends the
// initiation, then waits until answered is closed.
type answeringConn struct {
	*memudp.Conn
	answered chan struct{}
	once     sync.Once
}

func (c *answeringConn) WriteBatch(msgs []tunio.Datagram) error {
	err := c.Conn.WriteBatch(msgs)
	for _, m := range msgs {
		if typ, _ := wire.PeekType(m.Buf[:m.N]); typ == wire.TypeInitiation {
			c.once.Do(func() { <-c.answered })
		}
	}
	return err
}

// TestResponseBeforeInitiationSent: on a fast path (in memory, or a peer
// next door) the response can complete the handshake before the timer
// actor has returned from sending the initiation. The retry timer must
// not be armed again after that: it would fire a needless initiation
// RekeyTimeout later, and meanwhile the session would report a handshake
// under way.
func TestResponseBeforeInitiationSent(t *testing.T) {
	clk := fakeClock()
	answered := make(chan struct{})
	e, p := withRawPeer(t, tunnelSpec{clock: clk, wrapUDP: func(c *memudp.Conn) tunio.UDPConn {
		return &answeringConn{Conn: c, answered: answered}
	}})
	defer func() {
		select {
		case <-answered:
		default:
			close(answered)
		}
	}()
	tp := firstPeer(e.tun)
	e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1)) // waits for a handshake the tunnel starts
	p.respond()
	waitFor(t, 5*time.Second, func() bool { return tp.handshakes.Load() == 1 },
		func() string { return "the handshake did not complete\n" + fmtStats(e.tun.Stats()) })
	close(answered) // only now does the initiation's write return
	if got, _ := p.recvData(5 * time.Second); seqOf(got) != 1 {
		t.Fatalf("got packet %d, want the one that waited", seqOf(got))
	}
	advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
	p.expectNothing(50 * time.Millisecond)
	if tp.session.Handshaking() {
		t.Fatal("a handshake is reported under way after it completed")
	}
}
