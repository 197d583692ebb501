package tunio

import (
	"fmt"
	"net/netip"
)

// Types of the interface configuration API (RTNL, LinkEvents), shared by
// every platform so that callers compile everywhere; only Linux
// implements the calls.

// LinkState is what PipeGuard follows of an interface.
type LinkState struct {
	Index int
	Name  string
	MTU   int
	Up    bool // administratively up (IFF_UP)
}

// MainTable is the kernel's main routing table, the one `ip route` shows.
const MainTable = 254

// Route is a route as the kernel holds it, for checks and messages.
type Route struct {
	Dst      netip.Prefix
	Dev      string     // output interface; "" when the route has none
	DevIndex int        // its index; 0 when none
	Gateway  netip.Addr // invalid when the route has none
	Table    int
	Protocol int // RTPROT_*: 2 kernel (an address's subnet), 3 boot (ip route add), ...
	Metric   int
	Type     int // RTN_*: 1 unicast, 6 blackhole, 7 unreachable, ...
}

// String describes the route the way `ip route` would.
func (rt Route) String() string {
	s := rt.Dst.String()
	switch rt.Type {
	case RouteBlackhole:
		s = "blackhole " + s
	case RouteUnreachable:
		s = "unreachable " + s
	case RouteProhibit:
		s = "prohibit " + s
	}
	if rt.Gateway.IsValid() {
		s += " via " + rt.Gateway.String()
	}
	if rt.Dev != "" {
		s += " dev " + rt.Dev
	}
	if rt.Table == MainTable {
		s += " table main"
	} else {
		s += fmt.Sprintf(" table %d", rt.Table)
	}
	switch rt.Protocol {
	case ProtoKernel:
		s += " proto kernel"
	case ProtoBoot:
		s += " proto boot"
	case ProtoStatic:
		s += " proto static"
	default:
		s += fmt.Sprintf(" proto %d", rt.Protocol)
	}
	return s + fmt.Sprintf(" metric %d", rt.Metric)
}

// Rule is a policy routing rule of the two kinds wg-quick adds for a full
// tunnel, and so PipeGuard: "not fwmark M lookup T" (Mark and Invert) and
// "lookup main suppress_prefixlength 0" (SuppressDefault).
type Rule struct {
	V6              bool   // IPv6 rule list; else IPv4
	Table           int    // table looked up
	Mark            uint32 // fwmark matched, 0 for none
	Invert          bool   // "not": the rule applies to what does not match
	SuppressDefault bool   // suppress_prefixlength 0: ignore the table's default routes
	Priority        int    // 0: the kernel chooses (add) or any (delete)
}

// String describes the rule the way `ip rule` would.
func (ru Rule) String() string {
	s := "ip -4 rule"
	if ru.V6 {
		s = "ip -6 rule"
	}
	if ru.Priority > 0 {
		s += fmt.Sprintf(" %d:", ru.Priority)
	}
	if ru.Invert {
		s += " not"
	}
	s += " from all"
	if ru.Mark != 0 {
		s += fmt.Sprintf(" fwmark %#x", ru.Mark)
	}
	if ru.Table == MainTable {
		s += " lookup main"
	} else {
		s += fmt.Sprintf(" lookup %d", ru.Table)
	}
	if ru.SuppressDefault {
		s += " suppress_prefixlength 0"
	}
	return s
}

// LinkEvent is one link notification: a link was added or changed
// (Deleted false), or removed.
type LinkEvent struct {
	LinkState
	Deleted bool
}

// Route types and protocols, the kernel's RTN_* and RTPROT_* values, as
// Route reports them.
const (
	RouteUnicast     = 1
	RouteBlackhole   = 6
	RouteUnreachable = 7
	RouteProhibit    = 8

	ProtoKernel = 2 // the route of an address's subnet
	ProtoBoot   = 3 // added by `ip route add` (and PipeGuard)
	ProtoStatic = 4
)

// NetEvent is one notification of NetEvents: an address added to or
// removed from an interface, or a change to routing (a route or a policy
// rule, either family).
type NetEvent struct {
	Kind  NetEventKind
	Addr  netip.Addr // the address, for AddrAdded and AddrRemoved
	Index int        // the address's interface
}

// NetEventKind says what a NetEvent reports.
type NetEventKind uint8

// The kinds of NetEvent.
const (
	AddrAdded NetEventKind = iota + 1
	AddrRemoved
	RoutingChanged
)
