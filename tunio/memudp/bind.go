package memudp

import (
	"net"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/conn"

	"pipeguard/tunio"
)

var (
	_ conn.Bind     = (*Bind)(nil)
	_ conn.Endpoint = (*Endpoint)(nil)
)

// Bind puts a wireguard-go device on a Network: it implements wireguard's
// conn.Bind over a Conn listening at one address. Make one with NewBind.
// Safe for concurrent use, as wireguard-go requires.
//
// It is test scaffolding for interoperability checks and allocates an
// Endpoint per received datagram (wireguard-go keeps them).
type Bind struct {
	net  *Network
	addr netip.Addr

	mu   sync.Mutex // guards conn
	conn *Conn

	// sendMu guards send. It is not mu, so that Close need not wait for a
	// Send blocked on a full queue (Config.Block).
	sendMu sync.Mutex
	send   []tunio.Datagram
}

// NewBind returns a closed Bind that will listen at addr on n when the
// device opens it.
func NewBind(n *Network, addr netip.Addr) *Bind {
	return &Bind{net: n, addr: addr, send: make([]tunio.Datagram, n.cfg.BatchSize)}
}

// Open implements conn.Bind.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	c, err := b.net.Listen(netip.AddrPortFrom(b.addr, port))
	if err != nil {
		return nil, 0, err
	}
	b.conn = c
	msgs := make([]tunio.Datagram, c.BatchSize())
	recv := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		batch := msgs[:min(len(packets), len(msgs))]
		for i := range batch {
			batch[i].Buf = packets[i]
		}
		n, err := c.ReadBatch(batch)
		for i := range n {
			sizes[i] = batch[i].N
			eps[i] = &Endpoint{Dst: batch[i].Addr, Src: batch[i].Local}
		}
		clear(batch)
		return n, err
	}
	return []conn.ReceiveFunc{recv}, c.LocalAddr().Port(), nil
}

// Close implements conn.Bind; Open may be called again afterwards.
func (b *Bind) Close() error {
	b.mu.Lock()
	c := b.conn
	b.conn = nil
	b.mu.Unlock()
	if c != nil {
		return c.Close()
	}
	return nil
}

// SetMark implements conn.Bind; marks mean nothing in memory.
func (b *Bind) SetMark(uint32) error { return nil }

// Send implements conn.Bind.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil {
		return net.ErrClosed
	}
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	for len(bufs) > 0 {
		batch := b.send[:min(len(bufs), len(b.send))]
		for i := range batch {
			batch[i] = tunio.Datagram{Buf: bufs[i], N: len(bufs[i]), Addr: e.Dst, Local: e.Src}
		}
		err := c.WriteBatch(batch)
		clear(batch)
		if err != nil {
			return err
		}
		bufs = bufs[len(batch):]
	}
	return nil
}

// ParseEndpoint implements conn.Bind; s is "ip:port".
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &Endpoint{Dst: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return b.net.cfg.BatchSize }

// Endpoint is a wireguard conn.Endpoint on a Network: the peer's address,
// and the local address its datagram came to, which replies leave from,
// as wireguard-go's sticky sockets do.
type Endpoint struct {
	Dst netip.AddrPort
	Src tunio.Local // zero: the Bind's own address
}

// ClearSrc implements conn.Endpoint.
func (e *Endpoint) ClearSrc() { e.Src = tunio.Local{} }

// SrcToString implements conn.Endpoint.
func (e *Endpoint) SrcToString() string {
	if !e.Src.IsValid() {
		return ""
	}
	return e.Src.Addr().String()
}

// DstToString implements conn.Endpoint.
func (e *Endpoint) DstToString() string { return e.Dst.String() }

// DstToBytes implements conn.Endpoint (used for MAC2 cookies).
func (e *Endpoint) DstToBytes() []byte {
	b, _ := e.Dst.MarshalBinary()
	return b
}

// DstIP implements conn.Endpoint.
func (e *Endpoint) DstIP() netip.Addr { return e.Dst.Addr() }

// SrcIP implements conn.Endpoint.
func (e *Endpoint) SrcIP() netip.Addr { return e.Src.Addr() }
