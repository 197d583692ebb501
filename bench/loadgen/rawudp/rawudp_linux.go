package rawudp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pipeguard/bench/core"
	"pipeguard/tunio"
)

// Conn is the load generator's own IPv4 UDP socket: a tunio.UDPConn
// (sendmmsg with UDP GSO, recvmmsg with UDP GRO) that stays out of the Go
// runtime's network poller. A socket in the poller is in its epoll set,
// edge-triggered for reading and writing, so every datagram that arrives,
// and every one sent that the far end consumes (the kernel frees it and
// signals room to write), wakes the thread waiting in epoll: under load,
// tens of thousands of thread switches a second on the generator's one
// CPU, most of its cost once its load is sealed ahead. This socket is
// blocking and in no epoll set. Sends are raw system calls with
// MSG_DONTWAIT (they hold their P the few tens of microseconds they take,
// so the runtime hands it to no other thread meanwhile); receives drain
// what is waiting and then, while datagrams keep coming, sleep pause
// between reads instead of waiting for the next one, and block in poll
// only when a read found nothing. ReadViews hands the datagrams over in
// place, without tunio's copy out of its GRO buffers.
//
// ReadBatch, ReadViews, WriteBatch and Close may be called concurrently;
// ReadBatch and ReadViews from one goroutine at a time.
type Conn struct {
	fd    int
	local netip.AddrPort
	pause time.Duration
	gso   atomic.Bool // cleared for good when the kernel refuses a segmented send

	closed atomic.Bool
	mu     sync.RWMutex // held shared by every call, exclusively by Close

	wmu sync.Mutex // guards the send side
	ws  rawSend

	rs rawRecv // the receive side: one reader at a time
}

// Sizes of a Conn.
const (
	// gsoSegments is the most datagrams one GSO send carries (the
	// kernel's UDP_MAX_SEGMENTS on the kernels we meet).
	gsoSegments = 64
	rawBatch    = 128 // datagrams per WriteBatch chunk and per ReadBatch
	// rawGSOBytes bounds a GSO run as the kernel does: one IP datagram.
	rawGSOBytes = 65535 - 20 - 8
	rawGROBufs  = 32    // receive buffers per recvmmsg
	rawGROBuf   = 65535 // the largest coalesced datagram
	rawCtrl     = 64    // room for a UDP_SEGMENT or UDP_GRO cmsg
	// rawPollWait bounds a blocked receive, so that Close need not wait
	// longer for it.
	rawPollWait = 20 * time.Millisecond
)

type rawSend struct {
	hdrs  []rawMmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ctrl  []byte
	first []int // index of each entry's first datagram
}

type rawRecv struct {
	hdrs    []rawMmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet4
	ctrl    []byte
	bufs    [][]byte
	drained bool // the last read took all there was while datagrams came
	// ReadBatch's leftovers: views not yet copied out.
	pend   [][]byte
	pendAt []netip.AddrPort
}

// rawMmsghdr is struct mmsghdr.
type rawMmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// New opens a socket bound to addr (IPv4) with buf bytes of socket
// buffer each way, UDP GRO on, and UDP GSO where the kernel has it; pause
// is the receiver's sleep after a read that drained the socket.
func New(addr netip.AddrPort, buf int, pause time.Duration) (*Conn, error) {
	if !addr.Addr().Is4() {
		return nil, fmt.Errorf("%w: %v: the generator's socket is IPv4", core.ErrNetns, addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("%w: socket: %v", core.ErrNetns, err)
	}
	c := &Conn{fd: fd, pause: pause}
	if err := c.setup(addr, buf); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *Conn) setup(addr netip.AddrPort, buf int) error {
	// The FORCE variants pass rmem_max and wmem_max (CAP_NET_ADMIN).
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf) != nil {
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, buf)
	}
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, buf) != nil {
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, buf)
	}
	if err := unix.SetsockoptInt(c.fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1); err != nil {
		return fmt.Errorf("%w: UDP_GRO: %v", core.ErrNetns, err)
	}
	_, err := unix.GetsockoptInt(c.fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	c.gso.Store(err == nil)
	if err := unix.Bind(c.fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
		return fmt.Errorf("%w: bind %v: %v", core.ErrNetns, addr, err)
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return fmt.Errorf("%w: getsockname: %v", core.ErrNetns, err)
	}
	s4 := sa.(*unix.SockaddrInet4)
	c.local = netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(s4.Port))

	c.ws = rawSend{hdrs: make([]rawMmsghdr, rawBatch), iovs: make([]unix.Iovec, rawBatch),
		names: make([]unix.RawSockaddrInet4, rawBatch), ctrl: make([]byte, rawBatch*rawCtrl), first: make([]int, rawBatch)}
	r := &c.rs
	r.hdrs, r.iovs = make([]rawMmsghdr, rawGROBufs), make([]unix.Iovec, rawGROBufs)
	r.names, r.ctrl = make([]unix.RawSockaddrInet4, rawGROBufs), make([]byte, rawGROBufs*rawCtrl)
	r.bufs = make([][]byte, rawGROBufs)
	for i := range r.bufs {
		r.bufs[i] = make([]byte, rawGROBuf)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(rawGROBuf)
	}
	return nil
}

var (
	_ tunio.UDPConn     = (*Conn)(nil)
	_ tunio.UDPOffloads = (*Conn)(nil)
)

func (c *Conn) LocalAddr() netip.AddrPort { return c.local }
func (c *Conn) BatchSize() int            { return rawBatch }
func (c *Conn) Offloads() (gso, gro bool) { return c.gso.Load(), true }
func (c *Conn) SetMark(uint32) error      { return tunio.ErrUnsupported }
func (c *Conn) closedErr(op string) error {
	return fmt.Errorf("bench: raw UDP %s: %w", op, tunio.ErrClosed)
}
func (c *Conn) sysErr(op string, e error) error { return fmt.Errorf("bench: raw UDP %s: %w", op, e) }

// Close closes the socket once every call in progress has returned (a
// blocked receive notices within rawPollWait).
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return unix.Close(c.fd)
}

// enter takes mu shared unless the socket is closed; the caller then
// may use the fd until it unlocks.
func (c *Conn) enter() bool {
	c.mu.RLock()
	if c.closed.Load() {
		c.mu.RUnlock()
		return false
	}
	return true
}

// WriteBatch implements tunio.UDPConn: runs of datagrams of one size to
// one address go as one GSO send, up to rawBatch datagrams a system call.
func (c *Conn) WriteBatch(msgs []tunio.Datagram) error {
	if !c.enter() {
		return c.closedErr("send")
	}
	defer c.mu.RUnlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var first error
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), rawBatch)]
		done, err := c.writeChunk(chunk)
		if err != nil && first == nil {
			first = err
		}
		if errors.Is(err, tunio.ErrClosed) {
			return err
		}
		msgs = msgs[done:]
	}
	return first
}

// writeChunk sends chunk and returns how many datagrams it dealt with: all
// of them, or fewer when the kernel refused a segmented send (GSO is then
// off for good, and the caller sends the rest again).
func (c *Conn) writeChunk(chunk []tunio.Datagram) (int, error) {
	w := &c.ws
	gso := c.gso.Load()
	e := 0
	var first error
	for i := 0; i < len(chunk); {
		d := &chunk[i]
		if !d.Addr.Addr().Is4() {
			if first == nil {
				first = tunio.ErrAddressFamily
			}
			i++
			continue
		}
		start := i
		setIov(&w.iovs[i], d)
		i++
		if gso && d.N > 0 {
			total := d.N
			for i < len(chunk) && i-start < gsoSegments && chunk[i].Addr == d.Addr && chunk[i-1].N == d.N &&
				chunk[i].N > 0 && chunk[i].N <= d.N && total+chunk[i].N <= rawGSOBytes {
				total += chunk[i].N
				setIov(&w.iovs[i], &chunk[i])
				i++
			}
		}
		h := &w.hdrs[e]
		h.hdr = unix.Msghdr{Iov: &w.iovs[start]}
		h.hdr.SetIovlen(i - start)
		putSockaddr4(&h.hdr, &w.names[e], d.Addr)
		if i-start > 1 {
			ctrl := w.ctrl[e*rawCtrl : (e+1)*rawCtrl]
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
			cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])) = uint16(d.N)
			h.hdr.Control = &ctrl[0]
			h.hdr.SetControllen(unix.CmsgSpace(2))
		}
		w.first[e] = start
		e++
	}
	for off := 0; off < e; {
		if c.closed.Load() { // the caller holds mu: the fd is still ours
			return len(chunk), c.closedErr("send")
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&w.hdrs[off])), uintptr(e-off), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0:
			off += max(int(n), 1)
		case errno == unix.EINTR:
		case errno == unix.EAGAIN:
			// The socket buffer is full: the window keeps it from
			// happening under load; wait for the far end to read.
			time.Sleep(50 * time.Microsecond)
		case w.hdrs[off].hdr.Controllen != 0 && (errno == unix.EIO || errno == unix.EINVAL):
			// The kernel or the device cannot segment: plain datagrams
			// from here on.
			c.gso.Store(false)
			return w.first[off], first
		default:
			// One entry failed (unreachable, say); the others go on.
			if first == nil {
				first = c.sysErr("sendmmsg", errno)
			}
			off++
		}
	}
	return len(chunk), first
}

// putSockaddr4 points h's name at sa, set to ap.
func putSockaddr4(h *unix.Msghdr, sa *unix.RawSockaddrInet4, ap netip.AddrPort) {
	sa.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As4()
	h.Name = (*byte)(unsafe.Pointer(sa))
	h.Namelen = unix.SizeofSockaddrInet4
}

func setIov(iov *unix.Iovec, d *tunio.Datagram) {
	iov.Base = nil
	if d.N > 0 {
		iov.Base = &d.Buf[0]
	}
	iov.SetLen(d.N)
}

// ReadViews waits for datagrams and calls fn with each, in place in the
// socket's buffers (valid only during the call), and its sender; it
// returns how many it handed over. After a read that drained the socket
// it first sleeps the pause.
func (c *Conn) ReadViews(fn func(b []byte, from netip.AddrPort)) (int, error) {
	r := &c.rs
	if r.drained && c.pause > 0 {
		time.Sleep(c.pause)
	}
	for {
		for i := range r.hdrs {
			h := &r.hdrs[i]
			h.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&r.names[i])), Namelen: unix.SizeofSockaddrInet4,
				Iov: &r.iovs[i], Control: &r.ctrl[i*rawCtrl]}
			h.hdr.SetIovlen(1)
			h.hdr.SetControllen(rawCtrl)
		}
		// The fd is used under mu, shared, and never while fn runs (fn may
		// send, and Close waiting for mu would then wait for itself).
		if !c.enter() {
			return 0, c.closedErr("receive")
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		c.mu.RUnlock()
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// Nothing waiting: block until something is (not a raw call:
			// this one may take long, and the runtime hands our P on).
			r.drained = false
			if !c.enter() {
				return 0, c.closedErr("receive")
			}
			fds := [1]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
			_, err := unix.Poll(fds[:], int(rawPollWait/time.Millisecond))
			c.mu.RUnlock()
			if err != nil && !errors.Is(err, unix.EINTR) {
				return 0, c.sysErr("poll", err)
			}
			continue
		default:
			return 0, c.sysErr("recvmmsg", errno)
		}
		r.drained = int(n) < len(r.hdrs)
		count := 0
		for i := range int(n) {
			h := &r.hdrs[i]
			size := int(h.len)
			if h.hdr.Flags&unix.MSG_TRUNC != 0 || size == 0 {
				continue
			}
			from := netip.AddrPortFrom(netip.AddrFrom4(r.names[i].Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&r.names[i].Port))[:]))
			seg := tunio.GROSegment(r.ctrl[i*rawCtrl : i*rawCtrl+int(h.hdr.Controllen)])
			if seg <= 0 || seg > size {
				seg = size
			}
			b := r.bufs[i][:size]
			for len(b) > 0 {
				d := b[:min(seg, len(b))]
				fn(d, from)
				count++
				b = b[len(d):]
			}
		}
		return count, nil
	}
}

// ReadBatch implements tunio.UDPConn over ReadViews, copying into msgs;
// what does not fit waits for the next call.
func (c *Conn) ReadBatch(msgs []tunio.Datagram) (int, error) {
	r := &c.rs
	if len(r.pend) == 0 {
		r.pend, r.pendAt = r.pend[:0], r.pendAt[:0]
		if _, err := c.ReadViews(func(b []byte, from netip.AddrPort) {
			r.pend = append(r.pend, append([]byte(nil), b...))
			r.pendAt = append(r.pendAt, from)
		}); err != nil {
			return 0, err
		}
	}
	n := 0
	for n < len(msgs) && len(r.pend) > 0 {
		m := &msgs[n]
		b := r.pend[0]
		m.Addr, m.Trunc, m.N = r.pendAt[0], len(b) > len(m.Buf), 0
		if !m.Trunc {
			m.N = copy(m.Buf, b)
		}
		r.pend, r.pendAt = r.pend[1:], r.pendAt[1:]
		n++
	}
	return n, nil
}
