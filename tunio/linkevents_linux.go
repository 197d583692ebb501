package tunio

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// LinkEvents receives the kernel's link notifications (the rtnetlink
// group RTNLGRP_LINK) of the network namespace of the thread that called
// SubscribeLinks. Next is for one goroutine; Close may be called from any
// other, and unblocks it.
type LinkEvents struct {
	s      *nl.NetlinkSocket
	closed atomic.Bool
}

// SubscribeLinks starts receiving link notifications in the calling
// thread's network namespace. Notifications are queued by the kernel from
// here on, so state read after this call and then followed through Next
// misses nothing.
func SubscribeLinks() (*LinkEvents, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		return nil, os.NewSyscallError("netlink subscribe", err)
	}
	return &LinkEvents{s: s}, nil
}

// Next blocks until the kernel reports link changes and returns them, in
// order. It returns ErrEventsLost when notifications were dropped (and
// may be called again), and ErrClosed once Close was called.
func (e *LinkEvents) Next() ([]LinkEvent, error) {
	for {
		msgs, from, err := e.s.Receive()
		if e.closed.Load() {
			return nil, ErrClosed
		}
		if errors.Is(err, syscall.ENOBUFS) {
			return nil, ErrEventsLost
		}
		if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("netlink receive", err)
		}
		if from.Pid != nl.PidKernel {
			continue // not the kernel's: ignore
		}
		var out []LinkEvent
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
				continue
			}
			if ev, ok := parseLinkMessage(m.Data); ok {
				ev.Deleted = m.Header.Type == unix.RTM_DELLINK
				out = append(out, ev)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// Close stops the subscription and unblocks Next. It is safe to call more
// than once.
func (e *LinkEvents) Close() error {
	if !e.closed.Swap(true) {
		e.s.Close()
	}
	return nil
}

// parseLinkMessage reads an RTM_NEWLINK or RTM_DELLINK body.
func parseLinkMessage(b []byte) (LinkEvent, bool) {
	if len(b) < unix.SizeofIfInfomsg {
		return LinkEvent{}, false
	}
	info := nl.DeserializeIfInfomsg(b)
	ev := LinkEvent{LinkState: LinkState{Index: int(info.Index), Up: info.Flags&unix.IFF_UP != 0}}
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return LinkEvent{}, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			v := a.Value
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			ev.Name = string(v)
		case unix.IFLA_MTU:
			if len(a.Value) >= 4 {
				ev.MTU = int(nl.NativeEndian().Uint32(a.Value))
			}
		}
	}
	return ev, true
}
