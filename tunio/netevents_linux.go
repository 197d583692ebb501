package tunio

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NetEvents receives the kernel's notifications of address, route and
// policy-rule changes (rtnetlink groups RTNLGRP_IPV4_IFADDR,
// RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,
// RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE) of the network namespace of the
// thread that called SubscribeNet: what decides which of the host's
// addresses a datagram can leave from, and by which interface. Next is
// for one goroutine; Close may be called from any other, and unblocks it.
type NetEvents struct {
	s      *nl.NetlinkSocket
	closed atomic.Bool
}

// SubscribeNet starts receiving address and routing notifications in the
// calling thread's network namespace; they are queued by the kernel from
// here on.
func SubscribeNet() (*NetEvents, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE,
		unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
		unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE,
		unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
	if err != nil {
		return nil, os.NewSyscallError("netlink subscribe", err)
	}
	return &NetEvents{s: s}, nil
}

// Next waits for notifications and returns them, in order. With wait > 0
// it waits at most that long, and returns none and a nil error if nothing
// came; with wait <= 0 it waits until something comes. It returns
// ErrEventsLost when notifications were dropped (and may be called
// again), and ErrClosed once Close was called.
func (e *NetEvents) Next(wait time.Duration) ([]NetEvent, error) {
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	for {
		var timeout unix.Timeval
		if wait > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, nil
			}
			timeout = unix.NsecToTimeval(left.Nanoseconds())
		}
		e.s.SetReceiveTimeout(&timeout) // zero: no timeout
		msgs, from, err := e.s.Receive()
		if e.closed.Load() {
			return nil, ErrClosed
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, nil
		case errors.Is(err, syscall.ENOBUFS):
			return nil, ErrEventsLost
		case errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN):
			continue
		case err != nil:
			return nil, os.NewSyscallError("netlink receive", err)
		}
		if from.Pid != nl.PidKernel {
			continue // not the kernel's: ignore
		}
		var out []NetEvent
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.RTM_NEWADDR, unix.RTM_DELADDR:
				if ev, ok := parseAddrMessage(m.Data); ok {
					ev.Kind = AddrAdded
					if m.Header.Type == unix.RTM_DELADDR {
						ev.Kind = AddrRemoved
					}
					out = append(out, ev)
				}
			case unix.RTM_NEWROUTE, unix.RTM_DELROUTE, unix.RTM_NEWRULE, unix.RTM_DELRULE:
				out = append(out, NetEvent{Kind: RoutingChanged})
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// Close stops the subscription and unblocks Next. It is safe to call more
// than once.
func (e *NetEvents) Close() error {
	if !e.closed.Swap(true) {
		e.s.Close()
	}
	return nil
}

// parseAddrMessage reads the address of an RTM_NEWADDR or RTM_DELADDR
// body (struct ifaddrmsg and its attributes): IFA_LOCAL, the host's own
// address, where there is one (on a point-to-point IPv4 link IFA_ADDRESS
// is the far end's), else IFA_ADDRESS. It returns false for a body it
// cannot read, or one whose address does not match its family. It walks
// the attributes itself: nl.ParseRouteAttr panics on some malformed
// input (FuzzParseAddrMessage found one).
func parseAddrMessage(b []byte) (NetEvent, bool) {
	if len(b) < unix.SizeofIfAddrmsg {
		return NetEvent{}, false
	}
	family, index := b[0], binary.NativeEndian.Uint32(b[4:8])
	var local, address []byte
	for a := b[unix.SizeofIfAddrmsg:]; len(a) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(a[0:2]))
		if l < unix.SizeofRtAttr || l > len(a) {
			return NetEvent{}, false
		}
		switch binary.NativeEndian.Uint16(a[2:4]) {
		case unix.IFA_LOCAL:
			local = a[unix.SizeofRtAttr:l]
		case unix.IFA_ADDRESS:
			address = a[unix.SizeofRtAttr:l]
		}
		next := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if next >= len(a) {
			break
		}
		a = a[next:]
	}
	v := local
	if v == nil {
		v = address
	}
	var ip netip.Addr
	switch {
	case family == unix.AF_INET && len(v) == 4:
		ip = netip.AddrFrom4([4]byte(v))
	case family == unix.AF_INET6 && len(v) == 16:
		ip = netip.AddrFrom16([16]byte(v))
	default:
		return NetEvent{}, false
	}
	return NetEvent{Addr: ip, Index: int(index)}, true
}
