package memrig

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"pipeguard/tunio"
)

// feedConn is a tunio.UDPConn for benchmarks. ReadBatch serves the
// datagrams handed to Feed, from one remote address, and those handed to
// FeedFrom, from addresses of their own, copying each into the tunnel's
// buffer; WriteBatch hands what the tunnel sends to a callback. Nothing is
// allocated per datagram.
//
// Safe for the tunnel's one reader and its writers (serialised by the
// tunnel), and for Feed, FeedFrom and Close from any goroutine.
type feedConn struct {
	local, remote netip.AddrPort
	feed          chan [][]byte
	others        chan sourcedBatch
	closed        chan struct{}
	closeOnce     sync.Once

	cur [][]byte // the batch being served; owned by the reader
	pos int
	// The FeedFrom batch being served; owned by the reader.
	ocur sourcedBatch
	opos int
	// othersRead counts FeedFrom's datagrams read, so that a harness can
	// wait until what it queued is gone.
	othersRead atomic.Uint64

	// onWrite sees every datagram the tunnel sends; it must not keep b.
	onWrite func(b []byte)
	written atomic.Uint64
}

var _ tunio.UDPConn = (*feedConn)(nil)

// sourcedBatch is datagrams each with its own source address.
type sourcedBatch struct {
	dgrams [][]byte
	from   []netip.AddrPort
}

// othersQueue is how many FeedFrom batches wait at most; more are
// dropped, as a full socket buffer drops. A few thousand datagrams, about
// what a socket's receive buffer holds.
const othersQueue = 8

func newFeedConn(local, remote netip.AddrPort, onWrite func([]byte)) *feedConn {
	return &feedConn{local: local, remote: remote, feed: make(chan [][]byte, 64), others: make(chan sourcedBatch, othersQueue),
		closed: make(chan struct{}), onWrite: onWrite}
}

// Feed queues datagrams to be read, in order. It does not copy them.
func (c *feedConn) Feed(dgrams [][]byte) {
	select {
	case c.feed <- dgrams:
	case <-c.closed:
	}
}

// FeedFrom queues datagrams, dgrams[i] from from[i], unless the queue is
// full: then it drops them, as a socket's full receive buffer would, and
// returns false. It does not copy them.
func (c *feedConn) FeedFrom(dgrams [][]byte, from []netip.AddrPort) bool {
	select {
	case c.others <- sourcedBatch{dgrams, from}:
		return true
	default:
		return false
	}
}

// ReadBatch serves queued datagrams: FeedFrom's first, up to half the
// batch, so that they mix with Feed's as datagrams from many senders mix
// in a socket's queue, then Feed's. It waits only when nothing is queued.
func (c *feedConn) ReadBatch(msgs []tunio.Datagram) (int, error) {
	for {
		n := c.readOthers(msgs[:max(1, len(msgs)/2)])
		n += c.readFeed(msgs[n:])
		if n > 0 {
			return n, nil
		}
		select {
		case c.cur = <-c.feed:
			c.pos = 0
		case c.ocur = <-c.others:
			c.opos = 0
		case <-c.closed:
			return 0, tunio.ErrClosed
		}
	}
}

// readFeed copies Feed's datagrams into msgs without waiting.
func (c *feedConn) readFeed(msgs []tunio.Datagram) int {
	if c.pos >= len(c.cur) {
		select {
		case c.cur = <-c.feed:
			c.pos = 0
		default:
			return 0
		}
	}
	n := 0
	for n < len(msgs) && c.pos < len(c.cur) {
		msgs[n].N = copy(msgs[n].Buf, c.cur[c.pos])
		msgs[n].Addr = c.remote
		n++
		c.pos++
	}
	return n
}

// readOthers copies FeedFrom's datagrams into msgs without waiting.
func (c *feedConn) readOthers(msgs []tunio.Datagram) int {
	if c.opos >= len(c.ocur.dgrams) {
		select {
		case c.ocur = <-c.others:
			c.opos = 0
		default:
			return 0
		}
	}
	n := 0
	for n < len(msgs) && c.opos < len(c.ocur.dgrams) {
		msgs[n].N = copy(msgs[n].Buf, c.ocur.dgrams[c.opos])
		msgs[n].Addr = c.ocur.from[c.opos]
		n++
		c.opos++
	}
	c.othersRead.Add(uint64(n))
	return n
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
