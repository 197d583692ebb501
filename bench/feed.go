package bench

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"pipeguard/tunio"
)

// feedConn is a tunio.UDPConn for benchmarks. ReadBatch serves the
// datagrams handed to Feed, from one remote address, copying each into the
// tunnel's buffer; WriteBatch hands what the tunnel sends to a callback.
// Nothing is allocated per datagram.
//
// Safe for the tunnel's one reader and its writers (serialised by the
// tunnel), and for Feed and Close from any goroutine.
type feedConn struct {
	local, remote netip.AddrPort
	feed          chan [][]byte
	closed        chan struct{}
	closeOnce     sync.Once

	cur [][]byte // the batch being served; owned by the reader
	pos int

	// onWrite sees every datagram the tunnel sends; it must not keep b.
	onWrite func(b []byte)
	written atomic.Uint64
}

var _ tunio.UDPConn = (*feedConn)(nil)

func newFeedConn(local, remote netip.AddrPort, onWrite func([]byte)) *feedConn {
	return &feedConn{local: local, remote: remote, feed: make(chan [][]byte, 64), closed: make(chan struct{}), onWrite: onWrite}
}

// Feed queues datagrams to be read, in order. It does not copy them.
func (c *feedConn) Feed(dgrams [][]byte) {
	select {
	case c.feed <- dgrams:
	case <-c.closed:
	}
}

func (c *feedConn) ReadBatch(msgs []tunio.Datagram) (int, error) {
	for c.pos >= len(c.cur) {
		select {
		case c.cur = <-c.feed:
			c.pos = 0
		case <-c.closed:
			return 0, tunio.ErrClosed
		}
	}
	n := 0
	for n < len(msgs) && c.pos < len(c.cur) {
		d := c.cur[c.pos]
		msgs[n].N = copy(msgs[n].Buf, d)
		msgs[n].Addr = c.remote
		n++
		c.pos++
	}
	return n, nil
}

func (c *feedConn) WriteBatch(msgs []tunio.Datagram) error {
	select {
	case <-c.closed:
		return tunio.ErrClosed
	default:
	}
	for i := range msgs {
		if c.onWrite != nil {
			c.onWrite(msgs[i].Buf[:msgs[i].N])
		}
	}
	c.written.Add(uint64(len(msgs)))
	return nil
}

func (c *feedConn) LocalAddr() netip.AddrPort { return c.local }
func (c *feedConn) BatchSize() int            { return tunio.DefaultBatchSize }
func (c *feedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
