package noise

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// memBind is an in-memory conn.Bind for a wireguard-go device: what the
// device sends appears on sent, and inject hands the device a datagram as
// if it came from a fixed address. It is a test helper, so it copies every
// datagram.
type memBind struct {
	from memEndpoint   // the source of injected datagrams
	recv chan []byte   // injected datagrams, read by the device
	sent chan []byte   // datagrams the device sent
	mu   sync.Mutex    // guards done
	done chan struct{} // closed by Close; replaced by Open
}

var _ conn.Bind = (*memBind)(nil)

func newMemBind(from netip.AddrPort) *memBind {
	return &memBind{
		from: memEndpoint(from),
		recv: make(chan []byte, 64),
		sent: make(chan []byte, 64),
		done: make(chan struct{}),
	}
}

func (b *memBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	done := make(chan struct{})
	b.done = done
	b.mu.Unlock()
	fn := func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		select {
		case <-done:
			return 0, net.ErrClosed
		case d := <-b.recv:
			sizes[0] = copy(bufs[0], d)
			eps[0] = b.from
			return 1, nil
		}
	}
	return []conn.ReceiveFunc{fn}, port, nil
}

func (b *memBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	return nil
}

func (b *memBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	for _, buf := range bufs {
		select {
		case b.sent <- append([]byte(nil), buf...):
		case <-done:
			return net.ErrClosed
		}
	}
	return nil
}

func (b *memBind) inject(t *testing.T, d []byte) {
	t.Helper()
	select {
	case b.recv <- append([]byte(nil), d...):
	case <-time.After(5 * time.Second):
		t.Fatal("device does not read datagrams")
	}
}

func (b *memBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	return memEndpoint(ap), err
}

func (b *memBind) SetMark(uint32) error { return nil }
func (b *memBind) BatchSize() int       { return 1 }

// memEndpoint is an address in the in-memory network.
type memEndpoint netip.AddrPort

func (e memEndpoint) ClearSrc()           {}
func (e memEndpoint) SrcToString() string { return "" }
func (e memEndpoint) DstToString() string { return netip.AddrPort(e).String() }
func (e memEndpoint) DstToBytes() []byte {
	b, _ := netip.AddrPort(e).MarshalBinary()
	return b
}
func (e memEndpoint) DstIP() netip.Addr { return netip.AddrPort(e).Addr() }
func (e memEndpoint) SrcIP() netip.Addr { return netip.Addr{} }
