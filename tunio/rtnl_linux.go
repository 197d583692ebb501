package tunio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interface configuration over rtnetlink, the kernel interface `ip` uses,
// so PipeGuard needs no iproute2 binary. It is built on
// github.com/vishvananda/netlink: policy rules, routing tables, route
// dumps and link notifications would each have doubled a hand-written
// encoder, and the library's handles keep their sockets in the network
// namespace they were opened in, which a watcher goroutine (which may run
// on any thread) needs. These calls run at setup and on rare events, not
// per packet, and allocate freely.

// RTNL is a connection to the network configuration of one network
// namespace: the calling thread's when OpenRTNL ran. Every method acts in
// that namespace, whatever thread calls it, and is safe for concurrent
// use. The zero value is not usable; Close releases the sockets.
type RTNL struct {
	h *netlink.Handle
}

// OpenRTNL opens an rtnetlink connection in the calling thread's network
// namespace.
func OpenRTNL() (*RTNL, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("netlink socket", err)
	}
	return &RTNL{h: h}, nil
}

// Close closes the connection.
func (r *RTNL) Close() { r.h.Close() }

// link looks an interface up by name; a missing one is ENODEV, as the
// kernel reports it for an index.
func (r *RTNL) link(name string) (netlink.Link, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, ErrInvalidInterface
	}
	l, err := r.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, &os.SyscallError{Syscall: "link " + name, Err: syscall.ENODEV}
		}
		return nil, os.NewSyscallError("link "+name, err)
	}
	return l, nil
}

// Link returns the state of the interface name.
func (r *RTNL) Link(name string) (LinkState, error) {
	l, err := r.link(name)
	if err != nil {
		return LinkState{}, err
	}
	a := l.Attrs()
	return LinkState{Index: a.Index, Name: a.Name, MTU: a.MTU, Up: a.RawFlags&unix.IFF_UP != 0}, nil
}

// SetMTU sets the MTU of the interface name.
func (r *RTNL) SetMTU(name string, mtu int) error {
	l, err := r.link(name)
	if err != nil {
		return err
	}
	return sysErr("set mtu", r.h.LinkSetMTU(l, mtu))
}

// SetLinkUp brings the interface name up. The kernel's IPv6 setup follows
// asynchronously (its link watcher runs up to a second later); until then
// IPv6 packets written to a TUN for a local address may be dropped.
func (r *RTNL) SetLinkUp(name string) error {
	l, err := r.link(name)
	if err != nil {
		return err
	}
	return sysErr("set link", r.h.LinkSetUp(l))
}

// SetLinkDown takes the interface name down.
func (r *RTNL) SetLinkDown(name string) error {
	l, err := r.link(name)
	if err != nil {
		return err
	}
	return sysErr("set link", r.h.LinkSetDown(l))
}

// AddAddress adds the address p (for example 10.0.0.1/24 or fd00::1/64) to
// the interface name; the prefix length also adds the route for the
// subnet, as `ip addr add` does. IPv6 addresses skip duplicate address
// detection: a tunnel has no neighbours to collide with, and a tentative
// address could not be used for a second or so. An address the interface
// has already is EEXIST.
func (r *RTNL) AddAddress(name string, p netip.Prefix) error {
	return r.changeAddress(true, name, p)
}

// DelAddress removes the address p from the interface name.
func (r *RTNL) DelAddress(name string, p netip.Prefix) error {
	return r.changeAddress(false, name, p)
}

func (r *RTNL) changeAddress(add bool, name string, p netip.Prefix) error {
	if !p.IsValid() {
		return ErrInvalidAddr
	}
	l, err := r.link(name)
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))}
	if p.Addr().Unmap().Is4() {
		a.Broadcast = net.IPv4zero // none, as `ip addr add` without brd
	} else {
		a.Flags = unix.IFA_F_NODAD
	}
	if add {
		return sysErr("address", r.h.AddrAdd(l, a))
	}
	return sysErr("address", r.h.AddrDel(l, a))
}

// Addresses returns the addresses of the interface name, both families,
// link-local ones included.
func (r *RTNL) Addresses(name string) ([]netip.Prefix, error) {
	l, err := r.link(name)
	if err != nil {
		return nil, err
	}
	as, err := r.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, sysErr("address list", err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// RouteOut asks the kernel which interface a datagram to dst from the
// host's address src, carrying the firewall mark mark (0: none), would
// leave by, as `ip route get DST from SRC mark MARK` does, and returns the
// interface's index. A src the host does not have, or no route, is an
// error.
func (r *RTNL) RouteOut(dst, src netip.Addr, mark uint32) (int, error) {
	dst, src = dst.Unmap(), src.Unmap()
	if !dst.IsValid() || !src.IsValid() || dst.Is4() != src.Is4() {
		return 0, ErrInvalidAddr
	}
	rs, err := r.h.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{SrcAddr: src.AsSlice(), Mark: mark})
	if err != nil {
		return 0, sysErr("route get", err)
	}
	if len(rs) == 0 || rs[0].LinkIndex == 0 {
		return 0, sysErr("route get", syscall.ENETUNREACH)
	}
	return rs[0].LinkIndex, nil
}

// AddRoute routes the prefix p (IPv4 or IPv6) into the interface name, in
// the routing table table (MainTable, or 0 for it, as `ip route add`).
// A route the table has already for p with the same metric is EEXIST.
func (r *RTNL) AddRoute(name string, p netip.Prefix, table int) error {
	return r.changeRoute(true, name, p, table)
}

// DelRoute removes the route for p through the interface name from the
// routing table table (0: MainTable).
func (r *RTNL) DelRoute(name string, p netip.Prefix, table int) error {
	return r.changeRoute(false, name, p, table)
}

func (r *RTNL) changeRoute(add bool, name string, p netip.Prefix, table int) error {
	if !p.IsValid() {
		return ErrInvalidAddr
	}
	l, err := r.link(name)
	if err != nil {
		return err
	}
	if table == 0 {
		table = MainTable
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(p), Table: table}
	if add {
		// As the hand-made routes of `ip route add P dev IF`: no gateway,
		// the prefix is on the link (IPv6 keeps universe scope).
		rt.Protocol = unix.RTPROT_BOOT
		rt.Type = unix.RTN_UNICAST
		rt.Scope = netlink.SCOPE_UNIVERSE
		if p.Addr().Is4() {
			rt.Scope = netlink.SCOPE_LINK
		}
		return sysErr("route", r.h.RouteAdd(rt))
	}
	// Any protocol and scope, as `ip route del` does.
	rt.Scope = netlink.SCOPE_NOWHERE
	return sysErr("route", r.h.RouteDel(rt))
}

// AddUnreachable adds an unreachable route for p (IPv4 or IPv6) to the
// routing table table with metric metric, as `ip route add unreachable P
// table T metric M`. It needs no interface, so it outlives any; a lookup
// that ends on it fails (a local sender gets EHOSTUNREACH or
// ENETUNREACH, a forwarded packet an ICMP error) and does not go on to
// the next policy rule. A route the table has already for p with the
// same metric is EEXIST.
func (r *RTNL) AddUnreachable(p netip.Prefix, table, metric int) error {
	return sysErr("route", r.h.RouteAdd(unreachable(p, table, metric)))
}

// DelUnreachable removes the unreachable route AddUnreachable added.
func (r *RTNL) DelUnreachable(p netip.Prefix, table, metric int) error {
	return sysErr("route", r.h.RouteDel(unreachable(p, table, metric)))
}

func unreachable(p netip.Prefix, table, metric int) *netlink.Route {
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
	return &netlink.Route{Dst: ipNet(p), Table: table, Priority: metric, Type: unix.RTN_UNREACHABLE,
		Protocol: unix.RTPROT_BOOT, Scope: netlink.SCOPE_UNIVERSE}
}

// Routes returns the unicast, blackhole, unreachable and prohibit routes
// of both families in the routing table table (0: every table but the
// kernel's local one). Cloned (cached) routes are left out.
func (r *RTNL) Routes(table int) ([]Route, error) {
	all, err := r.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, sysErr("route list", err)
	}
	names := map[int]string{}
	var out []Route
	for _, rt := range all {
		if table != 0 && rt.Table != table || table == 0 && rt.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		switch rt.Type {
		case unix.RTN_UNICAST, unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		default:
			continue // local, broadcast, multicast, anycast: the kernel's own
		}
		dst, ok := prefixOf(rt.Dst)
		if !ok {
			// No RTA_DST: the default route of its family.
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if rt.Family == unix.AF_INET6 {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		}
		out = append(out, Route{
			Dst: dst, DevIndex: rt.LinkIndex, Dev: r.linkName(names, rt.LinkIndex), Gateway: addrOf(rt.Gw),
			Table: rt.Table, Protocol: int(rt.Protocol), Metric: rt.Priority, Type: rt.Type,
		})
	}
	return out, nil
}

// linkName names the interface index, caching in names; "" for none, the
// index in brackets if it vanished meanwhile.
func (r *RTNL) linkName(names map[int]string, index int) string {
	if index == 0 {
		return ""
	}
	if n, ok := names[index]; ok {
		return n
	}
	n := fmt.Sprintf("[if %d]", index)
	if l, err := r.h.LinkByIndex(index); err == nil {
		n = l.Attrs().Name
	}
	names[index] = n
	return n
}

func (ru Rule) netlink() *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = unix.AF_INET
	if ru.V6 {
		nr.Family = unix.AF_INET6
	}
	nr.Table = ru.Table
	nr.Mark = ru.Mark
	nr.Invert = ru.Invert
	if ru.SuppressDefault {
		nr.SuppressPrefixlen = 0
	}
	if ru.Priority > 0 {
		nr.Priority = ru.Priority
	}
	return nr
}

// AddRule adds the rule. Identical rules may coexist (the kernel gives each
// its own priority unless one is set), so two tunnels each add and remove
// their own.
func (r *RTNL) AddRule(ru Rule) error { return sysErr("rule", r.h.RuleAdd(ru.netlink())) }

// DelRule removes one rule that matches ru (ENOENT if none does).
func (r *RTNL) DelRule(ru Rule) error { return sysErr("rule", r.h.RuleDel(ru.netlink())) }

// Rules returns the rules of one family in the form of Rule; rules with
// selectors Rule cannot express (source, interface, ...) are left out.
func (r *RTNL) Rules(v6 bool) ([]Rule, error) {
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	all, err := r.h.RuleList(fam)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, sysErr("rule list", err)
	}
	var out []Rule
	for _, nr := range all {
		if nr.Src != nil || nr.Dst != nil || nr.IifName != "" || nr.OifName != "" || nr.Goto > 0 ||
			nr.SuppressPrefixlen > 0 || nr.Mask != nil && *nr.Mask != 0xffffffff {
			continue
		}
		out = append(out, Rule{V6: v6, Table: nr.Table, Mark: nr.Mark, Invert: nr.Invert,
			SuppressDefault: nr.SuppressPrefixlen == 0, Priority: nr.Priority})
	}
	return out, nil
}

// TableInUse reports whether the routing table holds any route of either
// family, as wg-quick asks before it picks a table for a full tunnel.
func (r *RTNL) TableInUse(table int) (bool, error) {
	rs, err := r.Routes(table)
	return len(rs) > 0, err
}

// sysErr wraps a netlink error as the system call error it is, so callers
// can test errno values with errors.Is.
func sysErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return os.NewSyscallError("netlink "+what, err)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits, total := n.Mask.Size()
	if total != a.BitLen() && !(total == 128 && a.Is4()) {
		return netip.Prefix{}, false
	}
	if total == 128 && a.Is4() {
		bits -= 96
	}
	return netip.PrefixFrom(a, bits), true
}

func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
