package tunio

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvState is the receive side of a udpConn, reused by every ReadBatch so
// that a call allocates nothing.
//
// Without GRO, recvmmsg writes straight into the caller's buffers. With
// GRO, one received buffer can hold many datagrams from one sender to one
// local address glued together (all of the segment size the cmsg reports,
// the last maybe shorter), so recvmmsg fills internal 64 KiB buffers and
// split copies the datagrams out; what does not fit the caller's batch
// stays pending for the next call. Every message brings its control data
// (ctrl, recvCtrlSize bytes each): the pktinfo, which says the local
// address and interface, the outer ECN, the kernel's receive stamp, and
// with GRO the segment size.
type recvState struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	ctrl  []byte // recvCtrlSize per message, aligned for cmsghdrs

	// fn is recv as a method value made once: handing RawConn.Read a fresh
	// closure each call would allocate; tryFn is tryRecv likewise.
	fn, tryFn func(fd uintptr) bool
	vlen      int           // in: messages offered to recvmmsg
	n         int           // out: messages received
	errno     syscall.Errno // out; EAGAIN only from tryRecv

	gbufs [][]byte         // GRO receive buffers
	glen  []int            // bytes in gbufs[i]
	gaddr []netip.AddrPort // sender of gbufs[i]
	grecv []received       // what the control data of gbufs[i] says
	gn    int              // gbufs filled by the last recvmmsg
	gi    int              // next gbuf to split
	goff  int              // next datagram's offset in gbufs[gi]
}

func (r *recvState) init(c *udpConn) {
	n := c.batch
	r.hdrs = make([]mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet6, n)
	r.ctrl = alignedBytes(n * recvCtrlSize)
	r.fn, r.tryFn = r.recv, r.tryRecv
	if !c.gro {
		return
	}
	g := min(n, maxGROBuffers)
	r.gbufs = make([][]byte, g)
	r.glen = make([]int, g)
	r.gaddr = make([]netip.AddrPort, g)
	r.grecv = make([]received, g)
	for i := range r.gbufs {
		r.gbufs[i] = make([]byte, groBufSize)
		r.iovs[i].Base = &r.gbufs[i][0]
		r.iovs[i].SetLen(groBufSize)
	}
}

// recv runs inside RawConn.Read; returning false parks the goroutine until
// the socket is readable.
func (r *recvState) recv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.vlen), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// tryRecv is recv that does not wait: it reports EAGAIN instead.
func (r *recvState) tryRecv(fd uintptr) bool {
	if !r.recv(fd) {
		r.n, r.errno = 0, unix.EAGAIN
	}
	return true
}

// ReadBatch implements UDPConn.
func (c *udpConn) ReadBatch(msgs []Datagram) (int, error) { return c.readBatch(msgs, true) }

// TryReadBatch implements TryReader.
func (c *udpConn) TryReadBatch(msgs []Datagram) (int, error) { return c.readBatch(msgs, false) }

func (c *udpConn) readBatch(msgs []Datagram, wait bool) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() {
		return 0, ErrClosed
	}
	r := &c.r
	if c.gro && r.gi < r.gn {
		return r.split(msgs), nil
	}
	if c.gro {
		r.vlen = min(len(msgs), len(r.gbufs))
		for i := range r.vlen {
			h := &r.hdrs[i]
			h.hdr = unix.Msghdr{
				Name:    (*byte)(unsafe.Pointer(&r.names[i])),
				Namelen: sizeofSockaddr,
				Iov:     &r.iovs[i],
				Control: &r.ctrl[i*recvCtrlSize],
			}
			h.hdr.SetIovlen(1)
			h.hdr.SetControllen(recvCtrlSize)
		}
	} else {
		r.vlen = min(len(msgs), c.batch)
		for i := range r.vlen {
			iov := &r.iovs[i]
			iov.Base = nil
			if b := msgs[i].Buf; len(b) > 0 {
				iov.Base = &b[0]
			}
			iov.SetLen(len(msgs[i].Buf))
			h := &r.hdrs[i]
			h.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&r.names[i])), Namelen: sizeofSockaddr, Iov: iov, Control: &r.ctrl[i*recvCtrlSize]}
			h.hdr.SetIovlen(1)
			h.hdr.SetControllen(recvCtrlSize)
		}
	}
	fn := r.fn
	if !wait {
		fn = r.tryFn
	}
	if err := c.raw.Read(fn); err != nil {
		return 0, c.ioError("recvmmsg", err)
	}
	if r.errno == unix.EAGAIN && !wait {
		return 0, nil
	}
	if r.errno != 0 {
		return 0, c.ioError("recvmmsg", r.errno)
	}
	if c.gro {
		for i := range r.n {
			h := &r.hdrs[i]
			r.glen[i] = int(h.len)
			if h.hdr.Flags&unix.MSG_TRUNC != 0 {
				r.glen[i] = -1
			}
			r.grecv[i] = parseControl(r.ctrl[i*recvCtrlSize : i*recvCtrlSize+int(h.hdr.Controllen)])
			r.gaddr[i] = getSockaddr(&r.names[i])
		}
		r.gn, r.gi, r.goff = r.n, 0, 0
		return r.split(msgs), nil
	}
	for i := range r.n {
		h := &r.hdrs[i]
		m := &msgs[i]
		m.N = int(h.len)
		// The kernel wrote the head of a longer datagram into Buf.
		m.Trunc = h.hdr.Flags&unix.MSG_TRUNC != 0
		if m.Trunc {
			m.N = 0
		}
		m.Addr = getSockaddr(&r.names[i])
		rc := parseControl(r.ctrl[i*recvCtrlSize : i*recvCtrlSize+int(h.hdr.Controllen)])
		m.Local, m.ECN, m.Stamp = rc.local, rc.ecn, rc.stamp
	}
	return r.n, nil
}

// split copies pending datagrams out of the GRO buffers into msgs and
// returns how many it filled (at least one: the caller checked that some
// are pending).
func (r *recvState) split(msgs []Datagram) int {
	j := 0
	for j < len(msgs) && r.gi < r.gn {
		m := &msgs[j]
		rc := &r.grecv[r.gi]
		m.Addr, m.Local, m.ECN, m.Stamp = r.gaddr[r.gi], rc.local, rc.ecn, rc.stamp
		m.Trunc = false
		j++
		n := r.glen[r.gi]
		if n <= 0 {
			// Empty, or truncated (cannot happen with 64 KiB buffers, but
			// a datagram cut short must not pass as whole).
			m.N = 0
			r.gi, r.goff = r.gi+1, 0
			continue
		}
		seg := rc.seg
		if seg <= 0 || seg > n {
			seg = n
		}
		rest := r.gbufs[r.gi][r.goff:n]
		d := rest[:min(seg, len(rest))]
		if len(d) <= len(m.Buf) {
			m.N = copy(m.Buf, d)
		} else {
			copy(m.Buf, d) // the head, as recvmmsg leaves it
			m.N, m.Trunc = 0, true
		}
		r.goff += len(d)
		if r.goff >= n {
			r.gi, r.goff = r.gi+1, 0
		}
	}
	return j
}
