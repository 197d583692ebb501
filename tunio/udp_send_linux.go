package tunio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendState is the send side of a udpConn, reused by every WriteBatch so
// that a call allocates nothing. Datagrams are never copied: each sendmmsg
// entry points iovecs at the caller's buffers, and with GSO one entry takes
// a run of datagrams (same destination, same source, same ECN, same size,
// the last maybe shorter) that the kernel cuts back into datagrams of the
// size in the UDP_SEGMENT cmsg. An entry's control data (ctrl,
// sendCtrlSize bytes each) holds, in this order, that size, the outer
// ECN (IP_TOS or IPV6_TCLASS) and the source address (pktinfo), any of
// them.
type sendState struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	ctrl  []byte
	first []int  // index in the chunk of each entry's first datagram
	ecn   []bool // whether each entry carries an ECN cmsg

	fn    func(fd uintptr) bool // send as a method value, made once
	off   int                   // in: first entry to send
	vlen  int                   // in: entries in hdrs
	n     int                   // out: entries sent
	errno syscall.Errno         // out
}

func (w *sendState) init(c *udpConn) {
	n := c.batch
	w.hdrs = make([]mmsghdr, n)
	w.iovs = make([]unix.Iovec, n)
	w.names = make([]unix.RawSockaddrInet6, n)
	w.ctrl = alignedBytes(n * sendCtrlSize)
	w.first = make([]int, n)
	w.ecn = make([]bool, n)
	w.fn = w.send
}

// send runs inside RawConn.Write; returning false parks the goroutine until
// the socket is writable.
func (w *sendState) send(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.off])), uintptr(w.vlen-w.off), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		w.n, w.errno = int(n), e
		return true
	}
}

// WriteBatch implements UDPConn.
func (c *udpConn) WriteBatch(msgs []Datagram) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	var first error
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), c.batch)]
		done, err := c.writeChunk(chunk)
		if err == ErrClosed {
			return err
		}
		if first == nil {
			first = err
		}
		msgs = msgs[done:]
	}
	return first
}

// writeChunk sends chunk (at most c.batch datagrams) and returns how many
// of them it dealt with, and the first error. It stops early only when the
// kernel refused a segmented send: GSO is then off, and the caller sends
// the rest again one datagram per entry.
func (c *udpConn) writeChunk(chunk []Datagram) (done int, first error) {
	w := &c.w
	gso, ecn := c.gso.Load(), c.sendECN.Load()
	e := 0
	for i := 0; i < len(chunk); {
		d := &chunk[i]
		salen, ok := putSockaddr(&w.names[e], d.Addr, c.v6)
		if !ok {
			if first == nil {
				first = ErrAddressFamily
				if !d.Addr.Addr().IsValid() {
					first = ErrInvalidAddr
				}
			}
			i++
			continue
		}
		start := i
		w.setIov(i, d)
		i++
		if gso && d.N > 0 {
			// A run shares one header, so one destination and one
			// source.
			total := d.N
			for i < len(chunk) && i-start < maxGSOSegments &&
				chunk[i].Addr == d.Addr && chunk[i].Local == d.Local && chunk[i].ECN == d.ECN && chunk[i-1].N == d.N &&
				chunk[i].N > 0 && chunk[i].N <= d.N && total+chunk[i].N <= maxGSOBytes {
				total += chunk[i].N
				w.setIov(i, &chunk[i])
				i++
			}
		}
		h := &w.hdrs[e]
		h.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&w.names[e])), Namelen: salen, Iov: &w.iovs[start]}
		h.hdr.SetIovlen(i - start)
		ctrl := w.ctrl[e*sendCtrlSize : (e+1)*sendCtrlSize]
		n := 0
		if i-start > 1 {
			n = putSegment(ctrl, uint16(d.N))
		}
		w.ecn[e] = ecn && d.ECN&ecnMask != 0
		if w.ecn[e] {
			n += putECN(ctrl[n:], !c.v6 || d.Addr.Addr().Unmap().Is4(), d.ECN)
		}
		if canSendFrom(d.Local, d.Addr, c.v6) {
			n += putPktinfo(ctrl[n:], d.Local, c.v6)
		}
		if n > 0 {
			h.hdr.Control = &ctrl[0]
			h.hdr.SetControllen(n)
		}
		w.first[e] = start
		e++
	}
	w.off, w.vlen = 0, e
	stripped := -1 // the entry being sent again without its source
	for w.off < w.vlen {
		if err := c.raw.Write(w.fn); err != nil {
			return len(chunk), c.ioError("sendmmsg", err)
		}
		if w.errno == 0 {
			if stripped == w.off {
				// It went out without the source: the source was the
				// trouble.
				h := &w.hdrs[stripped].hdr
				for j := range int(h.Iovlen) {
					chunk[w.first[stripped]+j].LocalGone = true
				}
			}
			w.off += max(w.n, 1) // n is never 0 for vlen > 0; never spin
			continue
		}
		// sendmmsg reports an error only for the first entry it tried.
		k := w.off
		h := &w.hdrs[k].hdr
		segmented := h.Iovlen > 1
		if stripped != k && sourceRefused(w.errno) && int(h.Controllen) > controlLen(segmented, w.ecn[k]) {
			// The kernel refuses a source address that is no longer
			// the host's (EINVAL for IPv6; ENETUNREACH for IPv4 on
			// recent kernels, EINVAL or EADDRNOTAVAIL on older ones).
			// Try once more from the address routing picks, as kernel
			// WireGuard does when a remembered source has gone.
			stripped = k
			if n := controlLen(segmented, w.ecn[k]); n > 0 {
				h.SetControllen(n)
			} else {
				h.Control = nil
				h.SetControllen(0)
			}
			continue
		}
		if w.ecn[k] && w.errno == unix.EINVAL {
			// A kernel (or a sandbox's) that refuses the TOS cmsg: the
			// datagrams go without ECN from here on, rather than not at
			// all.
			c.sendECN.Store(false)
			return w.first[k], first
		}
		if segmented && (w.errno == unix.EIO || w.errno == unix.EINVAL) {
			// The kernel or the outgoing device cannot segment (EIO: no
			// checksum offload; EINVAL: e.g. a segment above the path
			// MTU). Plain datagrams from here on, for good.
			c.gso.Store(false)
			return w.first[k], first
		}
		// One datagram (or run) failed, e.g. unreachable: the others go on.
		if first == nil {
			first = c.ioError("sendmmsg", w.errno)
		}
		w.off++
	}
	return len(chunk), first
}

// controlLen is the length of an entry's control data without a source:
// the segment size and the ECN, those it has.
func controlLen(segmented, ecn bool) int {
	n := 0
	if segmented {
		n += sizeofSegmentCmsg
	}
	if ecn {
		n += sizeofECNCmsg
	}
	return n
}

// sourceRefused reports an error of sendmsg that a source address (pktinfo)
// that is no longer the host's can cause.
func sourceRefused(errno syscall.Errno) bool {
	return errno == unix.EINVAL || errno == unix.EADDRNOTAVAIL || errno == unix.ENETUNREACH
}

func (w *sendState) setIov(i int, d *Datagram) {
	iov := &w.iovs[i]
	iov.Base = nil
	if d.N > 0 {
		iov.Base = &d.Buf[0]
	}
	iov.SetLen(d.N)
}
