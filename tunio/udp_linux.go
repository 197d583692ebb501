package tunio

import (
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2); x/sys/unix has no
// wrapper. Go pads it after len to the alignment of Msghdr, as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

const (
	// sizeofSockaddr is the room for either address family: callers of
	// recvmmsg do not know in advance which one a datagram comes from.
	sizeofSockaddr = unix.SizeofSockaddrInet6

	// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS on the kernels we
	// meet (64; newer ones allow 128); more in one send is EINVAL.
	maxGSOSegments = 64

	// maxGSOBytes keeps a segmented send within one IP packet's length
	// field for both families (65535 minus the IPv6 and UDP headers).
	maxGSOBytes = 65535 - 40 - 8

	// groBufSize holds the largest datagram the kernel coalesces on
	// receive: a UDP GRO skb is at most 64 KiB.
	groBufSize = 65535

	// maxGROBuffers bounds the internal receive buffers used with GRO
	// (2 MiB at 64 KiB each). Every buffer holds up to 64 coalesced
	// datagrams from one sender, so a few dozen fill a batch when traffic
	// coalesces; when it does not (many peers), 32 datagrams per
	// recvmmsg still spread the system call cost thin.
	maxGROBuffers = 32
)

// udpConn is the Linux UDPConn: a non-blocking socket on the runtime
// netpoller, so a blocked ReadBatch parks its goroutine (no thread) and
// Close wakes it. ReadBatch calls are serialized by rmu and WriteBatch
// calls by wmu; each path has its own preallocated system call structures.
type udpConn struct {
	file   *os.File
	raw    syscall.RawConn
	v6     bool // AF_INET6 socket: v4 destinations are sent v4-mapped
	local  netip.AddrPort
	batch  int
	closed atomic.Bool
	gso    atomic.Bool // cleared for good when the kernel refuses a segmented send
	// sendECN: datagrams carry their ECN field in a TOS cmsg; cleared
	// for good when the kernel refuses one.
	sendECN atomic.Bool
	gro     bool
	mark    atomic.Uint32 // SO_MARK, as last set

	rmu sync.Mutex // guards r
	r   recvState

	wmu sync.Mutex // guards w
	w   sendState
}

var (
	_ UDPConn     = (*udpConn)(nil)
	_ UDPOffloads = (*udpConn)(nil)
	_ Marker      = (*udpConn)(nil)
	_ TryReader   = (*udpConn)(nil)
)

func listenUDP(addr netip.AddrPort, opts UDPOptions) (UDPConn, error) {
	ip := addr.Addr()
	family, v6only := unix.AF_INET6, false
	switch {
	case !ip.IsValid() || ip == netip.IPv6Unspecified():
		ip = netip.IPv6Unspecified()
	case ip.Is4() || ip.Is4In6():
		family, ip = unix.AF_INET, ip.Unmap()
	default:
		v6only = true
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	c, err := setupUDP(fd, family == unix.AF_INET6, v6only, netip.AddrPortFrom(ip, addr.Port()), opts)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// setupUDP configures and binds fd, then hands it to the netpoller. On
// error the caller still owns fd.
func setupUDP(fd int, v6, v6only bool, addr netip.AddrPort, opts UDPOptions) (*udpConn, error) {
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(v6only)); err != nil {
			return nil, os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	// The FORCE variants pass rmem_max/wmem_max but need CAP_NET_ADMIN;
	// without it the plain ones give what the sysctl allows.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.ReceiveBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, opts.ReceiveBuffer)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, opts.SendBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, opts.SendBuffer)
	}
	if opts.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(opts.Mark)); err != nil {
			return nil, os.NewSyscallError("setsockopt SO_MARK", err)
		}
	}
	var sa unix.RawSockaddrInet6
	salen, ok := putSockaddr(&sa, addr, v6)
	if !ok {
		return nil, ErrInvalidAddr
	}
	if _, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(salen)); e != 0 {
		return nil, os.NewSyscallError("bind", e)
	}
	salen = sizeofSockaddr
	if _, _, e := unix.Syscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen))); e != 0 {
		return nil, os.NewSyscallError("getsockname", e)
	}
	c := &udpConn{v6: v6, local: getSockaddr(&sa), batch: opts.BatchSize}
	c.mark.Store(opts.Mark)
	if !opts.DisableGSO {
		// Reading UDP_SEGMENT succeeds on kernels that support it (4.18+).
		_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		c.gso.Store(err == nil)
	}
	if !opts.DisableGRO {
		c.gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	}
	// Every datagram says the local address it was sent to, so that the
	// peer is answered from it (see Local). An IPv6 socket reports IPv4
	// datagrams v4-mapped in IPV6_PKTINFO, so one option serves each
	// family of socket.
	if v6 {
		err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		if err != nil {
			return nil, os.NewSyscallError("setsockopt IPV6_RECVPKTINFO", err)
		}
	} else if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt IP_PKTINFO", err)
	}
	enableRecvTOS(fd, v6, v6only)
	enableRecvStamp(fd)
	c.sendECN.Store(true)
	c.file = os.NewFile(uintptr(fd), "udp:"+c.local.String())
	raw, err := c.file.SyscallConn()
	if err != nil {
		return nil, err
	}
	c.raw = raw
	c.r.init(c)
	c.w.init(c)
	return c, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// LocalAddr implements UDPConn.
func (c *udpConn) LocalAddr() netip.AddrPort { return c.local }

// BatchSize implements UDPConn.
func (c *udpConn) BatchSize() int { return c.batch }

// Offloads implements UDPOffloads.
func (c *udpConn) Offloads() (gso, gro bool) { return c.gso.Load(), c.gro }

// Mark implements Marker.
func (c *udpConn) Mark() uint32 { return c.mark.Load() }

// SetMark implements Marker with SO_MARK; 0 removes the mark.
func (c *udpConn) SetMark(mark uint32) error {
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	})
	if err == nil && serr != nil {
		err = os.NewSyscallError("setsockopt SO_MARK", serr)
	}
	if err != nil {
		return c.ioError("setsockopt SO_MARK", err)
	}
	c.mark.Store(mark)
	return nil
}

// Close implements UDPConn. Closing the file wakes goroutines parked in the
// netpoller; they see closed set and report ErrClosed.
func (c *udpConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.file.Close()
}

// ioError turns an error from the RawConn or a system call into what the
// caller sees: ErrClosed once closed, else the error with its call's name.
func (c *udpConn) ioError(call string, err error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if errno, ok := err.(syscall.Errno); ok {
		return os.NewSyscallError(call, errno)
	}
	return err
}

// putSockaddr encodes ap for a socket of the given family into sa and
// returns its length. An IPv6 socket takes IPv4 addresses v4-mapped; an
// IPv4 socket cannot take IPv6 ones. Zones (scope ids) are not carried:
// link-local outer addresses are not supported.
func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v6 bool) (uint32, bool) {
	ip := ap.Addr()
	if !ip.IsValid() {
		return 0, false
	}
	if v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		putPort(&sa.Port, ap.Port())
		return unix.SizeofSockaddrInet6, true
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return 0, false
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
	putPort(&sa4.Port, ap.Port())
	return unix.SizeofSockaddrInet4, true
}

// getSockaddr decodes a kernel sockaddr; v4-mapped addresses come back as
// plain IPv4.
func getSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), getPort(&sa.Port))
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), getPort(&sa4.Port))
	}
	return netip.AddrPort{}
}

// The port fields of sockaddrs are in network byte order in memory.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// alignedBytes returns n bytes aligned for a cmsghdr.
func alignedBytes(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
}
