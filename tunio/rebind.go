package tunio

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Marker is an optional capability of a UDPConn: the firewall mark
// (SO_MARK) on the packets it sends, which policy routing rules match
// (wg-quick's full tunnel routes everything but the tunnel's own
// packets through it by that mark). Setting it needs CAP_NET_ADMIN.
type Marker interface {
	// SetMark marks every packet sent from now on; 0 removes the mark.
	SetMark(mark uint32) error
	// Mark returns the mark set last (0: none).
	Mark() uint32
}

// Rebinder is an optional capability of a UDPConn: moving to another
// port while in use, as `wg set IFACE listen-port N` asks.
type Rebinder interface {
	Marker
	// Rebind makes the socket listen on port (0: a free port the kernel
	// picks) with the firewall mark mark. On error nothing changed.
	Rebind(port uint16, mark uint32) error
}

// ListenFunc opens a UDP socket on port (0: a free one) whose packets
// carry the firewall mark mark (0: none).
type ListenFunc func(port uint16, mark uint32) (UDPConn, error)

// RebindConn is a UDPConn whose socket can be replaced while stages read
// and write it: the pipeline keeps one UDPConn for its whole life, and
// `wg set` moves the tunnel to another port underneath.
//
// The socket in use sits behind an atomic pointer, so ReadBatch and
// WriteBatch take no lock and allocate nothing. Rebind opens the new
// socket first (an error, such as the port being taken, leaves the old
// one in use), swaps it in, then closes the old one. That wakes a
// ReadBatch blocked on the old socket, which sees the swap and goes on
// reading the new one; a WriteBatch that met the old socket closing sends
// its batch again on the new one. So a rebind costs what wireguard-go's
// costs: datagrams queued at the old socket and not read yet are lost,
// and a batch being sent at the moment may go out twice (the peer's
// replay window drops the copies). Packets are never reordered.
//
// Make one with NewRebindConn or ListenRebindable; the zero value is not
// usable. ReadBatch and WriteBatch follow UDPConn's rules; Rebind,
// SetMark and Close may be called from any goroutine at any time.
type RebindConn struct {
	listen ListenFunc
	batch  int // of the first socket; the same ListenFunc gives every socket the same

	cur    atomic.Pointer[boundConn]
	closed atomic.Bool
	mu     sync.Mutex // serialises Rebind, SetMark and Close
}

// boundConn is one socket of a RebindConn and the mark it carries.
type boundConn struct {
	conn UDPConn
	mark uint32
}

var (
	_ UDPConn     = (*RebindConn)(nil)
	_ Rebinder    = (*RebindConn)(nil)
	_ UDPOffloads = (*RebindConn)(nil)
	_ TryReader   = (*RebindConn)(nil)
)

// NewRebindConn opens the first socket with listen(port, mark).
func NewRebindConn(listen ListenFunc, port uint16, mark uint32) (*RebindConn, error) {
	c, err := listen(port, mark)
	if err != nil {
		return nil, err
	}
	r := &RebindConn{listen: listen, batch: c.BatchSize()}
	r.cur.Store(&boundConn{conn: c, mark: mark})
	return r, nil
}

// ListenRebindable is ListenUDPOptions in a RebindConn: every socket it
// opens is bound to addr's address (the unspecified one: both families
// on one socket, see ListenUDP) with opts, opts.Mark replaced by the
// mark asked for.
func ListenRebindable(addr netip.AddrPort, opts UDPOptions) (*RebindConn, error) {
	ip := addr.Addr()
	return NewRebindConn(func(port uint16, mark uint32) (UDPConn, error) {
		o := opts
		o.Mark = mark
		return ListenUDPOptions(netip.AddrPortFrom(ip, port), o)
	}, addr.Port(), opts.Mark)
}

// ReadBatch implements UDPConn.
func (r *RebindConn) ReadBatch(msgs []Datagram) (int, error) {
	for {
		b := r.cur.Load()
		n, err := b.conn.ReadBatch(msgs)
		if err == nil || !r.swapped(b, err) {
			return n, err
		}
	}
}

// TryReadBatch implements TryReader, over a socket in use that does; over
// one that does not, it reads nothing.
func (r *RebindConn) TryReadBatch(msgs []Datagram) (int, error) {
	for {
		b := r.cur.Load()
		tr, ok := b.conn.(TryReader)
		if !ok {
			return 0, nil
		}
		n, err := tr.TryReadBatch(msgs)
		if err == nil || !r.swapped(b, err) {
			return n, err
		}
	}
}

// WriteBatch implements UDPConn.
func (r *RebindConn) WriteBatch(msgs []Datagram) error {
	for {
		b := r.cur.Load()
		err := b.conn.WriteBatch(msgs)
		if err == nil || !r.swapped(b, err) {
			return err
		}
	}
}

// swapped reports whether err came from socket b closing because a
// rebind replaced it: then the caller tries again on the new socket.
func (r *RebindConn) swapped(b *boundConn, err error) bool {
	return IsClosed(err) && !r.closed.Load() && r.cur.Load() != b
}

// LocalAddr implements UDPConn: the address of the socket in use.
func (r *RebindConn) LocalAddr() netip.AddrPort { return r.cur.Load().conn.LocalAddr() }

// BatchSize implements UDPConn.
func (r *RebindConn) BatchSize() int { return r.batch }

// Offloads implements UDPOffloads for the socket in use.
func (r *RebindConn) Offloads() (gso, gro bool) {
	if o, ok := r.cur.Load().conn.(UDPOffloads); ok {
		return o.Offloads()
	}
	return false, false
}

// Mark implements Marker.
func (r *RebindConn) Mark() uint32 { return r.cur.Load().mark }

// SetMark implements Marker: it marks the socket in use, and the ones
// later rebinds open.
func (r *RebindConn) SetMark(mark uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrClosed
	}
	return r.setMarkLocked(mark)
}

func (r *RebindConn) setMarkLocked(mark uint32) error {
	b := r.cur.Load()
	if mark == b.mark {
		return nil
	}
	m, ok := b.conn.(Marker)
	if !ok {
		return fmt.Errorf("%w: firewall marks on %T", ErrUnsupported, b.conn)
	}
	if err := m.SetMark(mark); err != nil {
		return err
	}
	r.cur.Store(&boundConn{conn: b.conn, mark: mark})
	return nil
}

// Rebind implements Rebinder. The port the socket already has keeps the
// socket (only the mark changes, in place), as kernel WireGuard skips a
// rebind to its own port; any other port, and 0, opens a new socket.
func (r *RebindConn) Rebind(port uint16, mark uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrClosed
	}
	old := r.cur.Load()
	if port != 0 && port == old.conn.LocalAddr().Port() {
		return r.setMarkLocked(mark)
	}
	c, err := r.listen(port, mark)
	if err != nil {
		return err
	}
	r.cur.Store(&boundConn{conn: c, mark: mark})
	old.conn.Close() // wakes a reader blocked on it, which moves over
	return nil
}

// Close implements UDPConn: it closes the socket in use; a pending
// ReadBatch returns ErrClosed.
func (r *RebindConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Swap(true) {
		return nil
	}
	return r.cur.Load().conn.Close()
}
