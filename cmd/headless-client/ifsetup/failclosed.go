package ifsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"pipeguard/tunio"
)

// A full tunnel fails closed: for each family it routes by policy, its
// table holds, besides the default route through the interface,
//
//	ip route add unreachable default table T metric 4278198272
//
// which needs no interface. While the interface carries its route, that
// one wins (metric 0, or 1024 for IPv6); when the interface loses it
// (link down), is deleted, or goes with a process that was killed, the
// lookup ends on the unreachable route: the packet is dropped, a local
// sender gets "no route to host" at once, and nothing falls through to
// the main table and leaves in cleartext. The unreachable routes and the
// rules are made before the interface exists, so a start has no window
// either, and they stay after anything but an explicit stop (Down): a
// crash, a deleted interface, a failure. Routing comes back with the
// next start, which takes them over, with Down, or with Cleanup (the
// `cleanup` command, and the unit's ExecStopPost).
//
// The metric is the one the kernel's VRF documentation gives its default
// unreachable route (Documentation/networking/vrf.rst), "so that it is
// the last": above any metric a route through the interface gets.
//
// The same routes serve a family the config does not tunnel, when asked
// to (Config.BlockUntunneled): its table has only the unreachable route,
// so its traffic goes nowhere, except to the main table's more specific
// routes (the local network), as a tunneled family's does.

// failClosedMetric is the unreachable routes' metric.
const failClosedMetric = 4278198272

// failRoute is an unreachable default route of one family in a table:
// what the state file records of it, and all it takes to remove it.
type failRoute struct {
	V6    bool `json:"v6"`
	Table int  `json:"table"`
}

func (r failRoute) prefix() netip.Prefix {
	if r.V6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// String describes the route as iproute2's command to add it.
func (r failRoute) String() string {
	fam := "-4"
	if r.V6 {
		fam = "-6"
	}
	return fmt.Sprintf("ip %s route unreachable default table %d metric %d", fam, r.Table, failClosedMetric)
}

// is reports whether the kernel's route e is r.
func (r failRoute) is(e tunio.Route) bool {
	return e.Type == tunio.RouteUnreachable && e.Table == r.Table && e.Metric == failClosedMetric &&
		e.Dst.Bits() == 0 && e.Dst.Addr().Is6() == r.V6
}

// failRoutes are the unreachable routes the plan needs.
func (p plan) failRoutes() []failRoute {
	var out []failRoute
	for f := range 2 {
		if p.blocked[f] || p.full[f] && p.failClosed {
			out = append(out, failRoute{V6: f == 1, Table: p.policyTable})
		}
	}
	return out
}

// isFailRouteLocked reports whether the kernel's route e is one of our
// unreachable routes, which the checks for conflicting routes ignore.
func (i *Interface) isFailRouteLocked(e tunio.Route) bool {
	return slices.ContainsFunc(i.failRoutes, func(r failRoute) bool { return r.is(e) })
}

// addFailRoutesLocked adds the plan's unreachable routes, each recorded
// before it is added (a route that is not there is no harm to a later
// removal; an unrecorded one would stay for good). One the previous run
// recorded (stale) and left is taken over as it is, so a restart after
// a crash has no moment without it.
func (i *Interface) addFailRoutesLocked() error {
	for _, r := range i.plan.failRoutes() {
		if k := slices.Index(i.stale.Routes, r); k >= 0 {
			i.stale.Routes = slices.Delete(i.stale.Routes, k, k+1)
			i.adopted = append(i.adopted, r.String())
		}
		i.failRoutes = append(i.failRoutes, r)
		if err := i.saveStateLocked(); err != nil {
			return err
		}
		err := i.rt.AddUnreachable(r.prefix(), r.Table, failClosedMetric)
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("%w: %s: %v", ErrSetup, r, err)
		}
	}
	return nil
}

// removeFailRoutesLocked removes our unreachable routes.
func (i *Interface) removeFailRoutesLocked() error {
	var first error
	for _, r := range i.failRoutes {
		if err := i.rt.DelUnreachable(r.prefix(), r.Table, failClosedMetric); err != nil && !gone(err) && first == nil {
			first = fmt.Errorf("%w: removing %s: %v", ErrSetup, r, err)
		}
	}
	i.failRoutes = nil
	return first
}

// FailsClosed reports whether the interface has unreachable routes that
// stay when the client stops without an explicit stop.
func (i *Interface) FailsClosed() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.failRoutes) > 0
}

// Fail ends the interface configuration for a client that stops without
// an explicit stop (its interface was deleted, a part failed): if it
// fails closed, the policy rules, the unreachable routes and their state
// file stay, as after a crash, and so does DNS (with its record), so
// that nothing goes out in cleartext until the next start takes them
// over or Cleanup removes them; what went with the interface is gone
// anyway. It reports whether it kept them. Otherwise it is Down.
func (i *Interface) Fail() (kept bool, err error) {
	i.mu.Lock()
	if i.down {
		i.mu.Unlock()
		return false, nil
	}
	if len(i.failRoutes) == 0 {
		i.mu.Unlock()
		return false, i.Down()
	}
	defer i.mu.Unlock()
	i.down = true
	i.rt.Close()
	i.log.Warn("stopped without an explicit stop: the full tunnel stays failed closed, its traffic is dropped, not sent in cleartext, "+
		"until the tunnel starts again or `pipeguard-headless-client cleanup "+i.name+"` restores normal routing",
		"name", i.name, "kept", i.keptLocked())
	return true, nil
}

// Abort undoes a start that failed, leaving the routing as the start
// found it: failed closed (what this start made instead of what a
// crashed run left: Fail) if a crashed run had left it so, and as it was
// (Down) otherwise.
func (i *Interface) Abort() error {
	i.mu.Lock()
	inherited := i.inherited
	i.mu.Unlock()
	if inherited {
		_, err := i.Fail()
		return err
	}
	return i.Down()
}

// keptLocked lists what Fail keeps.
func (i *Interface) keptLocked() []string {
	var out []string
	for _, r := range i.failRoutes {
		out = append(out, r.String())
	}
	for _, ru := range i.rules {
		out = append(out, ru.String())
	}
	return out
}
