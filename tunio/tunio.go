// Package tunio holds PipeGuard's edges to the operating system: the TUN
// device the tunnel reads and writes inner IP packets on, the UDP socket it
// exchanges WireGuard messages on, and the configuration of the tunnel
// interface (MTU, addresses, routes).
//
// The pipeline's edge stages depend only on the two small interfaces
// [Device] and [UDPConn]. Real implementations come from [CreateTUN] and
// [ListenUDP] (Linux); in-memory fakes for tests and benchmarks live in the
// sub-packages memtun and memudp. A [RebindConn] ([ListenRebindable])
// lets the tunnel move to another port and change its firewall mark
// while the stages keep one UDPConn.
//
// Both interfaces move packets in batches into and out of buffers owned by
// the caller, and do not allocate per call in steady state.
//
// After Close, every method that does I/O returns an error for which
// [IsClosed] reports true; it satisfies both errors.Is(err, net.ErrClosed)
// and errors.Is(err, os.ErrClosed), so a stage may test whichever it likes.
// A TUN device whose interface was deleted from outside returns
// [ErrDeviceGone] instead: that is not a clean stop.
package tunio

import (
	"errors"
	"net"
	"net/netip"
	"os"
)

// Sizes of the packet layout shared with the pipeline. (They mirror package
// wire, which tunio does not import yet.)
const (
	// InnerMTU is the tunnel MTU: the largest inner IP packet. 1280 is the
	// IPv6 minimum, which avoids IP fragmentation on any outer path.
	InnerMTU = 1280

	// Offset is where an inner packet starts in a pipeline buffer: the room
	// for the 16-byte WireGuard transport header, so sealing happens in
	// place. It is also the offset the TUN side reads and writes at; the
	// Linux TUN with offloads needs at least 10 bytes (virtio-net header)
	// there, which 16 covers.
	Offset = 16

	// Tailroom follows the inner packet for the Poly1305 tag.
	Tailroom = 16

	// DefaultBatchSize is how many packets one Read/Write or
	// ReadBatch/WriteBatch call handles at most by default. It matches
	// wireguard-go's conn.IdealBatchSize: large enough that the system call
	// cost is spread thin, small enough that a batch stays in cache.
	DefaultBatchSize = 128
)

// Device is a TUN device carrying inner IP packets.
//
// Read and Write may be called concurrently with each other and with Close;
// implementations in this module also tolerate concurrent Reads (or Writes),
// but the pipeline has one reader and one writer.
type Device interface {
	// Read reads one or more packets into bufs, each starting at
	// bufs[i][offset:], stores their lengths in sizes and returns how many
	// it read (at least one unless err != nil). It blocks until a packet is
	// available or the device is closed. len(sizes) must be >= len(bufs);
	// pass BatchSize() buffers so that a segmentation-offloaded read has
	// room to split into.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)

	// Write writes the packets bufs[i][offset:] and returns how many it
	// wrote. Write may modify the contents of bufs[i] (offload headers in
	// the headroom), never the slice bufs itself.
	Write(bufs [][]byte, offset int) (int, error)

	// BatchSize is the largest number of packets one Read returns or one
	// Write takes usefully. It does not change over the device's life.
	BatchSize() int

	// MTU is the device's MTU as last known.
	MTU() int

	// Name is the interface name.
	Name() string

	// Close closes the device and unblocks pending Reads and Writes. It is
	// safe to call more than once.
	Close() error
}

// Datagram is one UDP datagram in a batch: the payload is Buf[:N], and Addr
// is the remote address (source on receive, destination on send). IPv4
// addresses are always plain (never v4-mapped IPv6).
type Datagram struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
	// Trunc reports, on receive, a datagram longer than Buf: N is 0 and
	// Buf holds the datagram's first len(Buf) bytes, so the receiver can
	// tell what was too large (and from whom) before it drops it.
	Trunc bool
	// Local is, on receive, the host's address the datagram was sent to
	// and the interface it arrived on (when the socket can tell; else
	// the zero Local). On send it is the address to send from, so that
	// a peer is answered from the address it wrote to; the zero Local
	// lets routing pick one.
	Local Local
	// LocalGone reports, after WriteBatch, that the kernel refused Local
	// as the source (the address is no longer the host's) and that the
	// datagram went out from the address routing picks instead: whoever
	// keeps Local for the peer should forget it. WriteBatch only ever sets
	// it; the caller clears it.
	LocalGone bool
	// ECN is the ECN field of the outer IP header (RFC 3168's two bits:
	// 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE): as received, or to send. A
	// UDPConn that cannot carry it receives 0 and sends 0.
	ECN uint8
	// Stamp is, on receive, when the datagram reached the host, in Unix
	// nanoseconds (the kernel's stamp); 0 when unknown. The time since is
	// how long it waited in the socket's buffer.
	Stamp int64
}

// UDPConn is a UDP socket doing batch datagram I/O.
//
// ReadBatch and WriteBatch may be called concurrently with each other and
// with Close.
type UDPConn interface {
	// ReadBatch blocks until at least one datagram arrives, then fills
	// msgs[i].N, msgs[i].Addr and msgs[i].Local for as many datagrams as
	// are ready (at most len(msgs)), the payload landing in
	// msgs[i].Buf[:N]. A datagram longer than its Buf is dropped and
	// reported with N == 0 and Trunc set.
	ReadBatch(msgs []Datagram) (n int, err error)

	// WriteBatch sends msgs[i].Buf[:msgs[i].N] to msgs[i].Addr for every i,
	// from msgs[i].Local where it is set and the socket can choose its
	// source. A datagram whose Local the kernel refuses (the address is
	// gone) is sent again without it, and then marked LocalGone. A
	// failure to send one datagram does not stop the others; the first
	// error is returned.
	WriteBatch(msgs []Datagram) error

	// LocalAddr is the address the socket is bound to.
	LocalAddr() netip.AddrPort

	// BatchSize is the number of datagrams one call handles best.
	BatchSize() int

	// Close closes the socket and unblocks a pending ReadBatch. It is safe
	// to call more than once.
	Close() error
}

// TryReader is an optional capability of a UDPConn: reading without
// waiting, so that a tunnel can drain the socket's buffer into a queue
// of its own between other work.
type TryReader interface {
	// TryReadBatch is ReadBatch that does not wait: it returns 0 and no
	// error when no datagram is ready.
	TryReadBatch(msgs []Datagram) (n int, err error)
}

// ReadPoller is an optional capability of a Device: telling whether a
// Read would return at once, so that a tunnel can drain the device's
// queue into a queue of its own between other work.
type ReadPoller interface {
	// Readable reports whether a packet is ready to Read now. False when
	// it cannot tell.
	Readable() bool
}

// Errors returned by this package. ErrClosed is the error of I/O on a closed
// Device or UDPConn; compare with [IsClosed] or errors.Is.
var (
	ErrClosed           error = closedError{}
	ErrUnsupported            = errors.New("tunio: unsupported on this platform")
	ErrOffset                 = errors.New("tunio: offset too small for the TUN offload header")
	ErrTooManySegments        = errors.New("tunio: offloaded packet has more segments than buffers")
	ErrAddressFamily          = errors.New("tunio: address family does not match the socket")
	ErrInvalidAddr            = errors.New("tunio: invalid address")
	ErrInvalidInterface       = errors.New("tunio: invalid interface name")
	// ErrDeviceGone is the error of I/O on a TUN device whose interface
	// was deleted (ip link del) while it was open. Unlike ErrClosed, no
	// one in this process closed it, so it is not a clean stop: the
	// device will not come back, and whoever runs it should stop and say
	// why. IsClosed reports false for it.
	ErrDeviceGone = errors.New("tunio: the TUN device's interface was deleted")
)

// More errors, of the TUN's reads and of link notifications.
var (
	// ErrPacketTooBig is a packet read from a TUN device that is larger
	// than the buffer it was to go into (an interface MTU above the
	// buffers'): the packet was dropped, and reading may go on.
	ErrPacketTooBig = errors.New("tunio: packet larger than the buffer, dropped")
	// ErrEventsLost means the kernel dropped link notifications because
	// the socket's buffer was full (ENOBUFS): whoever follows a link must
	// read its state afresh. LinkEvents goes on working after it.
	ErrEventsLost = errors.New("tunio: link notifications lost (socket buffer full)")
)

// closedError is ErrClosed: one value that matches both closed errors of the
// standard library, so callers written against either keep working.
type closedError struct{}

func (closedError) Error() string { return "tunio: use of closed device or socket" }

func (closedError) Is(target error) bool {
	return target == net.ErrClosed || target == os.ErrClosed
}

// IsClosed reports whether err means the Device or UDPConn was closed.
func IsClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}
