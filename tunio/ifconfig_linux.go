package tunio

import (
	"encoding/binary"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Interface configuration over rtnetlink, the kernel interface `ip` uses,
// so PipeGuard needs no iproute2 binary. Each call opens its own netlink
// socket and acts in the network namespace of the calling thread. These
// run at setup, not per packet, and allocate freely.

// SetMTU sets the MTU of the interface name.
func SetMTU(name string, mtu int) error {
	idx, err := ifIndex(name)
	if err != nil {
		return err
	}
	msg := newRequest(unix.RTM_NEWLINK, 0)
	msg.put(unsafe.Pointer(&unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: idx}), unix.SizeofIfInfomsg)
	msg.attr(unix.IFLA_MTU, u32(uint32(mtu)))
	return msg.do("set mtu")
}

// SetLinkUp brings the interface name up. The kernel's IPv6 setup follows
// asynchronously (its link watcher runs up to a second later); until then
// IPv6 packets written to a TUN for a local address may be dropped.
func SetLinkUp(name string) error { return setLink(name, unix.IFF_UP) }

// SetLinkDown takes the interface name down.
func SetLinkDown(name string) error { return setLink(name, 0) }

func setLink(name string, flags uint32) error {
	idx, err := ifIndex(name)
	if err != nil {
		return err
	}
	msg := newRequest(unix.RTM_NEWLINK, 0)
	msg.put(unsafe.Pointer(&unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: idx, Flags: flags, Change: unix.IFF_UP}), unix.SizeofIfInfomsg)
	return msg.do("set link")
}

// AddAddress adds the address p (for example 10.0.0.1/24 or fd00::1/64) to
// the interface name; the prefix length also adds the route for the
// subnet, as `ip addr add` does. IPv6 addresses skip duplicate address
// detection: a tunnel has no neighbours to collide with, and a tentative
// address could not be used for a second or so.
func AddAddress(name string, p netip.Prefix) error {
	return changeAddress(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, name, p)
}

// DelAddress removes the address p from the interface name.
func DelAddress(name string, p netip.Prefix) error {
	return changeAddress(unix.RTM_DELADDR, 0, name, p)
}

func changeAddress(typ, flags uint16, name string, p netip.Prefix) error {
	if !p.IsValid() {
		return ErrInvalidAddr
	}
	idx, err := ifIndex(name)
	if err != nil {
		return err
	}
	ip := p.Addr().Unmap()
	family := uint8(unix.AF_INET)
	if ip.Is6() {
		family = unix.AF_INET6
	}
	msg := newRequest(typ, flags)
	msg.put(unsafe.Pointer(&unix.IfAddrmsg{Family: family, Prefixlen: uint8(p.Bits()), Scope: unix.RT_SCOPE_UNIVERSE, Index: uint32(idx)}), unix.SizeofIfAddrmsg)
	msg.attr(unix.IFA_LOCAL, ip.AsSlice())
	msg.attr(unix.IFA_ADDRESS, ip.AsSlice())
	if ip.Is6() {
		msg.attr(unix.IFA_FLAGS, u32(unix.IFA_F_NODAD))
	}
	return msg.do("address")
}

// AddRoute routes the prefix p (IPv4 or IPv6) into the interface name.
func AddRoute(name string, p netip.Prefix) error {
	return changeRoute(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, name, p)
}

// DelRoute removes the route for p through the interface name.
func DelRoute(name string, p netip.Prefix) error {
	return changeRoute(unix.RTM_DELROUTE, 0, name, p)
}

func changeRoute(typ, flags uint16, name string, p netip.Prefix) error {
	if !p.IsValid() {
		return ErrInvalidAddr
	}
	idx, err := ifIndex(name)
	if err != nil {
		return err
	}
	p = p.Masked()
	ip := p.Addr().Unmap()
	rt := unix.RtMsg{
		Family:   unix.AF_INET,
		Dst_len:  uint8(p.Bits()),
		Table:    unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_BOOT,
		Scope:    unix.RT_SCOPE_LINK, // no gateway: the prefix is on the link
		Type:     unix.RTN_UNICAST,
	}
	if ip.Is6() {
		rt.Family, rt.Scope = unix.AF_INET6, unix.RT_SCOPE_UNIVERSE
	}
	if typ == unix.RTM_DELROUTE {
		// Match any protocol and scope, as `ip route del` does.
		rt.Protocol, rt.Scope = 0, unix.RT_SCOPE_NOWHERE
	}
	msg := newRequest(typ, flags)
	msg.put(unsafe.Pointer(&rt), unix.SizeofRtMsg)
	msg.attr(unix.RTA_DST, ip.AsSlice())
	msg.attr(unix.RTA_OIF, u32(uint32(idx)))
	return msg.do("route")
}

// ifIndex returns the index of the interface name.
func ifIndex(name string) (int32, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, ErrInvalidInterface
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, os.NewSyscallError("SIOCGIFINDEX "+name, err)
	}
	return int32(ifr.Uint32()), nil
}

// request is one rtnetlink request being built: header, fixed body, attributes.
type request []byte

func newRequest(typ, flags uint16) *request {
	r := make(request, unix.SizeofNlMsghdr, 128)
	h := (*unix.NlMsghdr)(unsafe.Pointer(&r[0]))
	h.Type = typ
	h.Flags = unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags
	h.Seq = 1
	return &r
}

// put appends the n bytes of the struct at p.
func (r *request) put(p unsafe.Pointer, n int) {
	*r = append(*r, unsafe.Slice((*byte)(p), n)...)
}

// attr appends an rtattr, padded to 4 bytes.
func (r *request) attr(typ uint16, data []byte) {
	var a unix.RtAttr
	a.Len = uint16(unix.SizeofRtAttr + len(data))
	a.Type = typ
	r.put(unsafe.Pointer(&a), unix.SizeofRtAttr)
	*r = append(*r, data...)
	for len(*r)%4 != 0 {
		*r = append(*r, 0)
	}
}

// do sends the request and waits for the kernel's acknowledgement.
func (r *request) do(what string) error {
	b := *r
	(*unix.NlMsghdr)(unsafe.Pointer(&b[0])).Len = uint32(len(b))
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return os.NewSyscallError("netlink socket", err)
	}
	defer unix.Close(fd)
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if err := unix.Sendto(fd, b, 0, kernel); err != nil {
		return os.NewSyscallError("netlink "+what, err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("netlink "+what, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return os.NewSyscallError("netlink "+what, err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return os.NewSyscallError("netlink "+what, unix.EBADMSG)
				}
				if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
					return os.NewSyscallError("netlink "+what, syscall.Errno(errno))
				}
				return nil // the acknowledgement
			case unix.NLMSG_DONE:
				return nil
			}
		}
	}
}

func u32(v uint32) []byte {
	return binary.NativeEndian.AppendUint32(nil, v)
}
