package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/godbus/dbus/v5"
)

// resolved gives systemd-resolved the tunnel's servers and domains for
// its link only, over resolved's D-Bus API (org.freedesktop.resolve1(5)):
//
//	SetLinkDNS(ifindex, [(family, address)])
//	SetLinkDomains(ifindex, [(domain, routing-only)])  search domains; "~." for a full tunnel
//	SetLinkDefaultRoute(ifindex, true)                 full tunnel only
//	RevertLink(ifindex)                                at stop
//
// The D-Bus API rather than resolvectl: it is the interface resolvectl
// itself calls, with typed arguments and errors and no command-line
// syntax that differs between systemd versions, no extra program to
// find or fork (resolvectl is not installed everywhere resolved runs),
// and it can be tested against a fake service on a private bus. A caller
// with CAP_NET_ADMIN, which the client has, needs no polkit.
//
// resolved forgets a link's settings when the link goes, and the TUN
// device goes with the process, so a crashed run leaves nothing in
// resolved; undo reverts only a link that is still there under the
// recorded name and index.
type resolved struct{ sys *System }

// D-Bus names of systemd-resolved.
const (
	resolvedName    = "org.freedesktop.resolve1"
	resolvedPath    = "/org/freedesktop/resolve1"
	resolvedManager = "org.freedesktop.resolve1.Manager"
)

// busTimeout bounds every conversation with the bus: a wedged bus must
// not hold a start or a stop.
const busTimeout = 5 * time.Second

// BusDialer connects to the system bus.
type BusDialer func(opts ...dbus.ConnOption) (*dbus.Conn, error)

// linkDNS is resolved's (iay): an address family and the address bytes.
type linkDNS struct {
	Family  int32
	Address []byte
}

// linkDomain is resolved's (sb): a domain and whether it is only for
// routing queries (true) or also a search domain (false).
type linkDomain struct {
	Domain      string
	RoutingOnly bool
}

func (m *resolved) Name() string { return SystemdResolved }

// Check refuses when resolved is not on the system bus.
func (m *resolved) Check(Settings) error {
	if err := m.running(); err != nil {
		return fmt.Errorf("%w: --dns-control %s: systemd-resolved is not running: %v", ErrPrereq, SystemdResolved, err)
	}
	return nil
}

// running reports why resolved cannot be reached, or nil.
func (m *resolved) running() error {
	return m.call(func(ctx context.Context, conn *dbus.Conn) error {
		var has bool
		if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, resolvedName).Store(&has); err != nil {
			return err
		}
		if !has {
			return errors.New(resolvedName + " is not on the system bus")
		}
		return nil
	})
}

func (m *resolved) apply(s Settings, rec *record) error {
	ifi, err := net.InterfaceByName(s.Interface)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDNS, err)
	}
	rec.Ifindex = ifi.Index
	if err := rec.save(); err != nil {
		return fmt.Errorf("%w: %v", ErrDNS, err)
	}
	idx := int32(ifi.Index)
	servers := make([]linkDNS, 0, len(s.Servers))
	for _, a := range s.Servers {
		family := int32(2) // AF_INET
		if a.Is6() && !a.Is4In6() {
			family = 10 // AF_INET6
		}
		servers = append(servers, linkDNS{Family: family, Address: a.Unmap().AsSlice()})
	}
	domains := make([]linkDomain, 0, len(s.Search)+1)
	for _, d := range s.Search {
		domains = append(domains, linkDomain{Domain: d})
	}
	if s.DefaultRoute {
		// "~.": every name not routed elsewhere comes here.
		domains = append(domains, linkDomain{Domain: ".", RoutingOnly: true})
	}
	return m.call(func(ctx context.Context, conn *dbus.Conn) error {
		o := conn.Object(resolvedName, resolvedPath)
		if err := o.CallWithContext(ctx, resolvedManager+".SetLinkDNS", 0, idx, servers).Err; err != nil {
			return fmt.Errorf("SetLinkDNS: %w", err)
		}
		if err := o.CallWithContext(ctx, resolvedManager+".SetLinkDomains", 0, idx, domains).Err; err != nil {
			return fmt.Errorf("SetLinkDomains: %w", err)
		}
		if s.DefaultRoute {
			if err := o.CallWithContext(ctx, resolvedManager+".SetLinkDefaultRoute", 0, idx, true).Err; err != nil {
				return fmt.Errorf("SetLinkDefaultRoute: %w", err)
			}
		}
		return nil
	})
}

func (m *resolved) undo(rec *record) error {
	if rec.Ifindex == 0 {
		return nil
	}
	if ifi, err := net.InterfaceByIndex(rec.Ifindex); err != nil || ifi.Name != rec.Interface {
		return nil // the link is gone, and resolved forgot it with it
	}
	return m.call(func(ctx context.Context, conn *dbus.Conn) error {
		err := conn.Object(resolvedName, resolvedPath).CallWithContext(ctx, resolvedManager+".RevertLink", 0, int32(rec.Ifindex)).Err
		var de dbus.Error
		if errors.As(err, &de) && de.Name == resolvedName+".NoSuchLink" {
			return nil // it went meanwhile
		}
		if err != nil {
			return fmt.Errorf("RevertLink: %w", err)
		}
		return nil
	})
}

// call runs fn on a new connection to the system bus, within busTimeout.
func (m *resolved) call(fn func(ctx context.Context, conn *dbus.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	dial := m.sys.Bus
	if dial == nil {
		dial = dbus.ConnectSystemBus
	}
	conn, err := dial(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: system bus: %v", ErrDNS, err)
	}
	defer conn.Close()
	if err := fn(ctx, conn); err != nil {
		return fmt.Errorf("%w: systemd-resolved: %v", ErrDNS, err)
	}
	return nil
}
