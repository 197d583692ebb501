// Package memtun is an in-memory TUN device for tests and benchmarks: a
// [TUN] implements tunio.Device, and the test drives the other side of it.
//
// Packets the tunnel reads are supplied by the test, either copied in with
// Inject/InjectBatch (a bounded ring that blocks when full) or produced on
// demand by a Config.Source function, which writes straight into the
// tunnel's read buffer: the cheapest way to push millions of packets in a
// benchmark. Packets the tunnel writes go to Config.OnWrite when set (no
// copy; a benchmark counts bytes there) or else into a bounded channel read
// with Outbound.
//
// Nothing is allocated per packet after New.
package memtun

import (
	"errors"
	"sync"
	"sync/atomic"

	"pipeguard/tunio"
	"pipeguard/tunio/internal/ring"
)

// Defaults for Config fields left zero.
const (
	DefaultName = "memtun0"
	// DefaultQueueLen bounds the inbound ring and the outbound channel: 8
	// read batches, enough that a test injecting in bursts rarely waits.
	DefaultQueueLen = 8 * tunio.DefaultBatchSize
)

// MaxPacketSize is the largest MTU a TUN supports, and the size of Packet.
// It leaves room above tunio.InnerMTU for tests at Ethernet size (1500).
const MaxPacketSize = 1500

// Errors.
var (
	ErrTooBig = errors.New("memtun: packet larger than the MTU")
	ErrMTU    = errors.New("memtun: MTU out of range")
)

var (
	_ tunio.Device     = (*TUN)(nil)
	_ tunio.ReadPoller = (*TUN)(nil)
)

// Config configures a TUN. The zero value is usable: defaults apply to zero
// fields.
type Config struct {
	Name      string // default DefaultName
	MTU       int    // default tunio.InnerMTU, at most MaxPacketSize
	BatchSize int    // default tunio.DefaultBatchSize
	QueueLen  int    // inbound ring and outbound channel capacity; default DefaultQueueLen

	// Source, when set, is called by Read for each buffer before the
	// injected packets are looked at: it writes one packet into dst
	// (len(dst) is at least the MTU) and returns its length, or 0 when it
	// has nothing to give at the moment (Read then serves injected packets,
	// or waits for one). Source runs on the reading goroutine, one call at a
	// time.
	Source func(dst []byte) int

	// OnWrite, when set, receives every packet the tunnel writes, instead
	// of the Outbound channel. pkt is only valid during the call. OnWrite
	// runs on the writing goroutine, one call at a time.
	OnWrite func(pkt []byte)
}

// Packet is a packet the tunnel wrote, by value.
type Packet struct {
	N   int
	Buf [MaxPacketSize]byte
}

// Bytes returns the packet's contents.
func (p *Packet) Bytes() []byte { return p.Buf[:p.N] }

// TUN is an in-memory tunio.Device. Make one with New; the zero value is not
// usable. All methods are safe for concurrent use; Read calls are
// serialized among themselves, and so are Write calls.
type TUN struct {
	cfg      Config
	inbound  *ring.Ring[struct{}]
	outbound chan Packet
	closed   chan struct{}
	once     sync.Once

	readMu  sync.Mutex // guards readDst, readLen
	readDst [][]byte
	readLen []int

	writeMu sync.Mutex // serializes Write, so OnWrite sees one call at a time
	// written counts packets written. It is atomic, not guarded by
	// writeMu, so that Written answers while a Write waits for room.
	written atomic.Uint64
}

// New returns a TUN configured by cfg.
func New(cfg Config) (*TUN, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MTU == 0 {
		cfg.MTU = tunio.InnerMTU
	}
	if cfg.MTU < 68 || cfg.MTU > MaxPacketSize {
		return nil, ErrMTU
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = tunio.DefaultBatchSize
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	t := &TUN{
		cfg:     cfg,
		inbound: ring.New[struct{}](cfg.QueueLen, cfg.MTU),
		closed:  make(chan struct{}),
		readDst: make([][]byte, cfg.BatchSize),
		readLen: make([]int, cfg.BatchSize),
	}
	if cfg.OnWrite == nil {
		t.outbound = make(chan Packet, cfg.QueueLen)
	}
	return t, nil
}

// Inject queues pkt to be read by the tunnel, waiting while the queue is
// full. It copies pkt.
func (t *TUN) Inject(pkt []byte) error {
	return t.InjectBatch([][]byte{pkt})
}

// InjectBatch queues pkts in order to be read by the tunnel, waiting while
// the queue is full; it takes the queue's lock once per run of packets that
// fit, which is what a benchmark pushing many packets wants. It copies pkts.
func (t *TUN) InjectBatch(pkts [][]byte) error {
	for _, p := range pkts {
		if len(p) > t.cfg.MTU {
			return ErrTooBig
		}
	}
	if _, ok := t.inbound.Push(pkts, nil, nil); !ok {
		return tunio.ErrClosed
	}
	return nil
}

// Queued is the number of injected packets not yet read.
func (t *TUN) Queued() int { return t.inbound.Len() }

// Readable implements tunio.ReadPoller: whether injected packets wait. A
// Config.Source is not asked (it cannot be without taking a packet), so
// with one Readable may say false when a Read would return at once.
func (t *TUN) Readable() bool { return t.inbound.Len() > 0 }

// Outbound delivers the packets the tunnel writes, in order, when
// Config.OnWrite is nil (nil otherwise). Write blocks while it is full. It
// is never closed; select on Done as well.
func (t *TUN) Outbound() <-chan Packet { return t.outbound }

// Done is closed when the TUN is closed.
func (t *TUN) Done() <-chan struct{} { return t.closed }

// Written is the number of packets the tunnel has written. It does not
// wait for a Write in progress.
func (t *TUN) Written() uint64 { return t.written.Load() }

// Read implements tunio.Device.
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	if len(bufs) > len(t.readDst) {
		bufs = bufs[:len(t.readDst)]
	}
	n := 0
	if src := t.cfg.Source; src != nil {
		if t.isClosed() {
			return 0, tunio.ErrClosed
		}
		for n < len(bufs) {
			m := src(bufs[n][offset:])
			if m <= 0 {
				break
			}
			sizes[n] = m
			n++
		}
		if n > 0 {
			return n, nil
		}
	}
	dst := t.readDst[:len(bufs)]
	for i := range dst {
		dst[i] = bufs[i][offset:]
	}
	n, ok := t.inbound.Pop(dst, t.readLen, nil)
	clear(dst) // drop references to the caller's buffers
	if !ok {
		return 0, tunio.ErrClosed
	}
	for i := range n {
		sizes[i] = min(t.readLen[i], len(bufs[i])-offset)
	}
	return n, nil
}

// Write implements tunio.Device. With OnWrite unset it copies each packet
// into Outbound, waiting while that is full.
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if t.isClosed() {
		return 0, tunio.ErrClosed
	}
	for i, b := range bufs {
		pkt := b[offset:]
		if len(pkt) > t.cfg.MTU {
			return i, ErrTooBig
		}
		if t.cfg.OnWrite != nil {
			t.cfg.OnWrite(pkt)
			t.written.Add(1)
			continue
		}
		var p Packet
		p.N = copy(p.Buf[:], pkt)
		select {
		case t.outbound <- p:
			t.written.Add(1)
		case <-t.closed:
			return i, tunio.ErrClosed
		}
	}
	return len(bufs), nil
}

// BatchSize implements tunio.Device.
func (t *TUN) BatchSize() int { return t.cfg.BatchSize }

// MTU implements tunio.Device.
func (t *TUN) MTU() int { return t.cfg.MTU }

// Name implements tunio.Device.
func (t *TUN) Name() string { return t.cfg.Name }

// Close implements tunio.Device: pending and later Reads, Writes and
// Injects fail with tunio.ErrClosed.
func (t *TUN) Close() error {
	t.once.Do(func() {
		close(t.closed)
		t.inbound.Close()
	})
	return nil
}

func (t *TUN) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}
