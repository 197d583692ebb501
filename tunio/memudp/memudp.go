// Package memudp is an in-memory UDP network for tests and benchmarks. A
// [Network] delivers datagrams between the [Conn]s listening on it; a Conn
// implements tunio.UDPConn, and a [Bind] lets a wireguard-go device sit on
// the same network.
//
// Like a real network, memudp never makes a sender wait by default: a
// datagram to an address nobody listens on, one longer than the network's
// MaxDatagramSize, or one that finds the receiver's queue full is dropped
// and counted (Network.Dropped, Conn.Dropped). Config.Block turns the full
// queue case into backpressure instead, for benchmarks that want no loss.
//
// Datagrams are copied into the receiver's preallocated queue; nothing is
// allocated per datagram.
package memudp

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"pipeguard/tunio"
	"pipeguard/tunio/internal/ring"
)

// Defaults for Config fields left zero.
const (
	// DefaultQueueLen is a receive queue of 8 batches, about what a socket
	// buffer of a few hundred kilobytes holds.
	DefaultQueueLen = 8 * tunio.DefaultBatchSize
	// DefaultMaxDatagramSize covers a WireGuard transport message for any
	// inner MTU up to about 2000 (wireguard-go's default 1420 included).
	DefaultMaxDatagramSize = 2048
	// firstEphemeralPort is where Listen starts looking for a free port
	// when asked for port 0 (the IANA dynamic range).
	firstEphemeralPort = 49152
)

// Errors.
var (
	ErrAddrInUse   = errors.New("memudp: address already in use")
	ErrNoPorts     = errors.New("memudp: no free port")
	ErrInvalidAddr = errors.New("memudp: invalid address")
)

var (
	_ tunio.UDPConn   = (*Conn)(nil)
	_ tunio.Marker    = (*Conn)(nil)
	_ tunio.TryReader = (*Conn)(nil)
)

// Config configures a Network. The zero value gives the defaults.
type Config struct {
	QueueLen        int  // receive queue per Conn, in datagrams; default DefaultQueueLen
	MaxDatagramSize int  // longer datagrams are dropped; default DefaultMaxDatagramSize
	Block           bool // a full receive queue makes the sender wait instead of dropping
	BatchSize       int  // Conn.BatchSize; default tunio.DefaultBatchSize
}

// Network is a set of Conns that can reach each other. Make one with
// NewNetwork; the zero value is not usable. Safe for concurrent use.
type Network struct {
	cfg     Config
	dropped atomic.Uint64 // no listener or too long; full queues count at the Conn

	mu       sync.RWMutex // guards conns and nextPort
	conns    map[netip.AddrPort]*Conn
	nextPort uint16
}

// NewNetwork returns an empty network with the default Config.
func NewNetwork() *Network { return NewNetworkConfig(Config{}) }

// NewNetworkConfig returns an empty network configured by cfg.
func NewNetworkConfig(cfg Config) *Network {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.MaxDatagramSize <= 0 {
		cfg.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = tunio.DefaultBatchSize
	}
	return &Network{cfg: cfg, conns: make(map[netip.AddrPort]*Conn), nextPort: firstEphemeralPort}
}

// Dropped is the number of datagrams the network dropped because nobody
// listened on their address or they were too long. Datagrams dropped at a
// full receive queue are counted by that Conn's Dropped instead.
func (n *Network) Dropped() uint64 { return n.dropped.Load() }

// Listen returns a Conn bound to addr. Port 0 picks a free port. An
// unspecified address (0.0.0.0 or ::) receives datagrams sent to any address
// of its family at that port (:: takes both families); a datagram sent from
// such a Conn carries the unspecified address as its source, so give Conns
// that send a concrete address.
func (n *Network) Listen(addr netip.AddrPort) (*Conn, error) {
	ip := addr.Addr().Unmap()
	if !ip.IsValid() {
		return nil, ErrInvalidAddr
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	port := addr.Port()
	if port == 0 {
		for tries := 0; ; tries++ {
			if tries > 65535-firstEphemeralPort {
				return nil, ErrNoPorts
			}
			p := n.nextPort
			n.nextPort++
			if n.nextPort == 0 {
				n.nextPort = firstEphemeralPort
			}
			if n.conns[netip.AddrPortFrom(ip, p)] == nil {
				port = p
				break
			}
		}
	}
	local := netip.AddrPortFrom(ip, port)
	if n.conns[local] != nil {
		return nil, ErrAddrInUse
	}
	c := newConn(n, local)
	n.conns[local] = c
	return c, nil
}

// lookup returns the Conn a datagram to dst reaches, or nil.
func (n *Network) lookup(dst netip.AddrPort) *Conn {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if c := n.conns[dst]; c != nil {
		return c
	}
	if dst.Addr().Is4() {
		if c := n.conns[netip.AddrPortFrom(netip.IPv4Unspecified(), dst.Port())]; c != nil {
			return c
		}
	}
	return n.conns[netip.AddrPortFrom(netip.IPv6Unspecified(), dst.Port())]
}

func (n *Network) remove(c *Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns[c.local] == c {
		delete(n.conns, c.local)
	}
}

// Conn is one endpoint on a Network; it implements tunio.UDPConn. Make one
// with Network.Listen. Safe for concurrent use; ReadBatch calls are
// serialized among themselves, and so are WriteBatch calls.
type Conn struct {
	net     *Network
	local   netip.AddrPort
	queue   *ring.Ring[meta]
	dropped atomic.Uint64
	mark    atomic.Uint32
	closed  chan struct{}
	once    sync.Once

	readMu   sync.Mutex // guards readDst, readLen, readFrom
	readDst  [][]byte
	readLen  []int
	readFrom []meta

	writeMu  sync.Mutex // guards writeRec, writeMeta
	writeRec [][]byte
	// writeMeta holds the local address once per slot, and the ECN of the
	// record in it; Push takes a meta per record.
	writeMeta []meta
}

// meta is what travels with a datagram besides its bytes: its sender, and
// the ECN field of the IP header it would have had.
type meta struct {
	from netip.AddrPort
	ecn  uint8
}

func newConn(n *Network, local netip.AddrPort) *Conn {
	b := n.cfg.BatchSize
	c := &Conn{
		net:       n,
		local:     local,
		queue:     ring.New[meta](n.cfg.QueueLen, n.cfg.MaxDatagramSize),
		closed:    make(chan struct{}),
		readDst:   make([][]byte, b),
		readLen:   make([]int, b),
		readFrom:  make([]meta, b),
		writeRec:  make([][]byte, b),
		writeMeta: make([]meta, b),
	}
	for i := range c.writeMeta {
		c.writeMeta[i].from = local
	}
	return c
}

// Dropped is the number of datagrams sent to c that found its queue full
// (always 0 with Config.Block).
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// Queued is the number of datagrams waiting to be read.
func (c *Conn) Queued() int { return c.queue.Len() }

// ReadBatch implements tunio.UDPConn.
func (c *Conn) ReadBatch(msgs []tunio.Datagram) (int, error) { return c.readBatch(msgs, true) }

// TryReadBatch implements tunio.TryReader.
func (c *Conn) TryReadBatch(msgs []tunio.Datagram) (int, error) { return c.readBatch(msgs, false) }

func (c *Conn) readBatch(msgs []tunio.Datagram, wait bool) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(msgs) > len(c.readDst) {
		msgs = msgs[:len(c.readDst)]
	}
	dst := c.readDst[:len(msgs)]
	for i := range msgs {
		dst[i] = msgs[i].Buf
	}
	var n int
	var ok bool
	if wait {
		n, ok = c.queue.Pop(dst, c.readLen, c.readFrom)
	} else {
		n, ok = c.queue.TryPop(dst, c.readLen, c.readFrom)
	}
	clear(dst) // drop references to the caller's buffers
	if !ok {
		return 0, tunio.ErrClosed
	}
	for i := range n {
		m := &msgs[i]
		m.N = c.readLen[i]
		m.Trunc = m.N > len(m.Buf)
		if m.Trunc {
			m.N = 0 // too long for the buffer: its head only, as tunio.UDPConn says
		}
		m.Addr, m.ECN = c.readFrom[i].from, c.readFrom[i].ecn
	}
	return n, nil
}

// WriteBatch implements tunio.UDPConn. Datagrams the network cannot deliver
// are dropped and counted, not reported: see the package comment. It
// returns an error only when c is closed.
func (c *Conn) WriteBatch(msgs []tunio.Datagram) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		return tunio.ErrClosed
	}
	for len(msgs) > 0 {
		// Hand each run of datagrams to one destination over in one Push,
		// so the receiver's lock is taken once per run.
		dst := msgs[0].Addr
		var to *Conn
		if dst.Addr().IsValid() {
			dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
			to = c.net.lookup(dst)
		}
		run := 0
		for run < len(msgs) && run < len(c.writeRec) && msgs[run].Addr == msgs[0].Addr {
			c.writeMeta[run].ecn = msgs[run].ECN & 3
			if msgs[run].N <= c.net.cfg.MaxDatagramSize {
				c.writeRec[run] = msgs[run].Buf[:msgs[run].N]
			} else {
				c.writeRec[run] = nil
			}
			run++
		}
		c.deliver(to, c.writeRec[:run], c.writeMeta[:run])
		clear(c.writeRec[:run])
		msgs = msgs[run:]
	}
	return nil
}

// deliver queues recs (with their metas) at to, dropping and counting
// what cannot go. A nil record stands for a datagram that was too long.
func (c *Conn) deliver(to *Conn, recs [][]byte, metas []meta) {
	for len(recs) > 0 {
		// Cut at the next too-long datagram so the Push below sees only
		// good ones.
		k := 0
		for k < len(recs) && recs[k] != nil {
			k++
		}
		if to == nil {
			c.net.dropped.Add(uint64(k))
		} else if k > 0 {
			var n int
			var ok bool
			if c.net.cfg.Block {
				n, ok = to.queue.Push(recs[:k], metas[:k], c.closed)
			} else {
				n, ok = to.queue.TryPush(recs[:k], metas[:k])
			}
			if !ok && to.isClosed() {
				c.net.dropped.Add(uint64(k - n))
			} else {
				to.dropped.Add(uint64(k - n))
			}
		}
		if k < len(recs) {
			c.net.dropped.Add(1)
			k++
		}
		recs, metas = recs[k:], metas[k:]
	}
}

// LocalAddr implements tunio.UDPConn.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// SetMark implements tunio.Marker. The network has no routing, so a mark
// changes nothing but what Mark reports.
func (c *Conn) SetMark(mark uint32) error {
	c.mark.Store(mark)
	return nil
}

// Mark implements tunio.Marker.
func (c *Conn) Mark() uint32 { return c.mark.Load() }

// ListenFunc returns a tunio.ListenFunc that opens Conns at ip on n, for
// a tunio.RebindConn; a taken port is ErrAddrInUse.
func (n *Network) ListenFunc(ip netip.Addr) tunio.ListenFunc {
	return func(port uint16, mark uint32) (tunio.UDPConn, error) {
		c, err := n.Listen(netip.AddrPortFrom(ip, port))
		if err != nil {
			return nil, err
		}
		c.mark.Store(mark)
		return c, nil
	}
}

// BatchSize implements tunio.UDPConn.
func (c *Conn) BatchSize() int { return len(c.readDst) }

// Close implements tunio.UDPConn: c leaves the network (its address is free
// again) and pending and later calls fail with tunio.ErrClosed.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.queue.Close()
		c.net.remove(c)
	})
	return nil
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}
