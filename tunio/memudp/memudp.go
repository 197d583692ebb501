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
// Each datagram carries the address it was sent to, which the receiver
// reads as its tunio.Local (on the one interface memudp has, index
// [IfIndex]), and a datagram sent with a Local leaves from that address, so
// a host that listens on a wildcard address can answer from the address it
// was reached at, as a real socket does with pktinfo. [Network.RemoveAddr]
// takes an address away from the network, for tests of what follows.
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

	// IfIndex is the interface index of every Local a Conn reports: the
	// network is one link.
	IfIndex = 1
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

	mu       sync.RWMutex // guards conns, nextPort and removed
	conns    map[netip.AddrPort]*Conn
	nextPort uint16
	removed  map[netip.Addr]bool // addresses taken away by RemoveAddr
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
	return &Network{cfg: cfg, conns: make(map[netip.AddrPort]*Conn), nextPort: firstEphemeralPort, removed: make(map[netip.Addr]bool)}
}

// RemoveAddr takes ip away from the network, as when a host's address is
// deleted: datagrams to it are dropped (counted by Dropped), even by a
// Conn listening on a wildcard address, and a datagram sent with ip as
// its Local goes from the sender's route source instead and comes back
// marked LocalGone, as a real socket refuses a source the host no longer
// has. Conns bound to ip stay open. AddAddr gives ip back.
func (n *Network) RemoveAddr(ip netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removed[ip.Unmap()] = true
}

// AddAddr undoes RemoveAddr. Every address is on the network until it is
// removed.
func (n *Network) AddAddr(ip netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.removed, ip.Unmap())
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

// lookupLocked returns the Conn a datagram to dst reaches, or nil; mu is
// held for reading.
func (n *Network) lookupLocked(dst netip.AddrPort) *Conn {
	if len(n.removed) > 0 && n.removed[dst.Addr()] {
		return nil
	}
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

// meta is what a datagram carries besides its bytes: who sent it, the
// address it was sent to, and the ECN field of the IP header it would
// have had.
type meta struct {
	from netip.AddrPort
	to   netip.Addr
	ecn  uint8
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

	readMu   sync.Mutex // guards readDst, readLen, readMeta
	readDst  [][]byte
	readLen  []int
	readMeta []meta

	writeMu   sync.Mutex // guards writeRec, writeMeta, sources
	writeRec  [][]byte
	writeMeta []meta
	sources   []netip.Addr // SetRouteSources
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
		readMeta:  make([]meta, b),
		writeRec:  make([][]byte, b),
		writeMeta: make([]meta, b),
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
		n, ok = c.queue.Pop(dst, c.readLen, c.readMeta)
	} else {
		n, ok = c.queue.TryPop(dst, c.readLen, c.readMeta)
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
		m.Addr = c.readMeta[i].from
		m.Local = tunio.LocalFrom(c.readMeta[i].to, IfIndex)
		m.ECN = c.readMeta[i].ecn
	}
	return n, nil
}

// WriteBatch implements tunio.UDPConn. Datagrams the network cannot deliver
// are dropped and counted, not reported: see the package comment. It
// returns an error only when c is closed. A datagram leaves from its Local
// when it has one (LocalGone if that address was removed), else from c's
// route source (SetRouteSources).
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
		c.net.mu.RLock()
		if dst.Addr().IsValid() {
			dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
			to = c.net.lookupLocked(dst)
		}
		run := 0
		for run < len(msgs) && run < len(c.writeRec) && msgs[run].Addr == msgs[0].Addr {
			m := &msgs[run]
			if m.N <= c.net.cfg.MaxDatagramSize {
				c.writeRec[run] = m.Buf[:m.N]
			} else {
				c.writeRec[run] = nil
			}
			from := c.routeSourceLocked(dst.Addr())
			if m.Local.IsValid() {
				// The map is asked only when an address was removed:
				// hashing an address per datagram would be most of what
				// a benchmark measures here.
				if len(c.net.removed) > 0 && c.net.removed[m.Local.Addr()] {
					m.LocalGone = true
				} else {
					from = m.Local.Addr()
				}
			}
			c.writeMeta[run] = meta{from: netip.AddrPortFrom(from, c.local.Port()), to: dst.Addr(), ecn: m.ECN & 3}
			run++
		}
		c.net.mu.RUnlock()
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

// SetRouteSources sets the addresses that datagrams sent without a Local
// leave from, as routing picks a wildcard socket's source: the first of
// the destination's family. By default, and for a family not among them,
// it is the address c listens on (unspecified for a wildcard Conn).
func (c *Conn) SetRouteSources(addrs ...netip.Addr) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.sources = c.sources[:0]
	for _, a := range addrs {
		c.sources = append(c.sources, a.Unmap())
	}
}

// routeSourceLocked is the source of a datagram to dst without a Local;
// writeMu is held.
func (c *Conn) routeSourceLocked(dst netip.Addr) netip.Addr {
	for _, a := range c.sources {
		if a.Is4() == dst.Is4() {
			return a
		}
	}
	return c.local.Addr()
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
