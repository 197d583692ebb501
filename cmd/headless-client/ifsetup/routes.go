package ifsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"pipeguard/tunio"
)

// plan says where the routes of AllowedIPs go: wg-quick's Table key, and
// for a full tunnel the table and fwmark of its policy routing.
type plan struct {
	mode        int64   // TableAuto, TableOff or a table number
	policyTable int     // the full tunnel's table; 0 without one
	full        [2]bool // IPv4, IPv6: 0.0.0.0/0 or ::/0 routed by policy
	blocked     [2]bool // IPv4, IPv6: not tunneled, routed by policy to the unreachable route
	failClosed  bool    // the full families get unreachable routes
	fwmark      uint32  // the mark the tunnel's sockets carry; 0: none
}

// policy reports whether family f (0: IPv4, 1: IPv6) is routed by policy.
func (p plan) policy(f int) bool { return p.full[f] || p.blocked[f] }

// families names the full tunnel's address families, for logs.
func (p plan) families() []string {
	var out []string
	if p.full[0] {
		out = append(out, "ipv4")
	}
	if p.full[1] {
		out = append(out, "ipv6")
	}
	return out
}

// tableFor is the table a route for pfx goes to, or false for none.
func (p plan) tableFor(pfx netip.Prefix) (int, bool) {
	switch {
	case p.mode == TableOff:
		return 0, false
	case p.mode > 0:
		return int(p.mode), true
	case pfx.Bits() == 0:
		return p.policyTable, true
	}
	return tunio.MainTable, true
}

// family is 0 for IPv4, 1 for IPv6.
func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

// defaults reports which families' default routes (0.0.0.0/0, ::/0) are
// among routes.
func defaults(routes []netip.Prefix) (full [2]bool) {
	for _, r := range routes {
		if r.Bits() == 0 {
			full[family(r)] = true
		}
	}
	return full
}

// CheckRoutes refuses routes in the main table that cover a peer's
// endpoint: the encrypted packets to that peer would be routed into the
// tunnel itself. A full tunnel (0.0.0.0/0, ::/0 with Table auto) is set
// up by policy routing, which exempts the tunnel's own packets by their
// fwmark, and is fine; routes in another table (Table = N) are the
// admin's rules' business, as with wg-quick.
func CheckRoutes(routes []netip.Prefix, endpoints []netip.AddrPort, table int64) error {
	if table == TableOff || table > 0 && table != tunio.MainTable {
		return nil
	}
	for _, r := range routes {
		if table == TableAuto && r.Bits() == 0 {
			continue
		}
		for _, ep := range endpoints {
			if ep.IsValid() && r.Contains(ep.Addr().Unmap()) {
				return fmt.Errorf("%w: AllowedIPs %s contains the endpoint %s, so the encrypted packets to it would be routed into the tunnel: "+
					"leave that address out of AllowedIPs, or route everything (0.0.0.0/0, ::/0: a full tunnel, set up with policy routing)",
					ErrRouteLoop, r, ep)
			}
		}
	}
	return nil
}

// normalize masks the prefixes and drops duplicates.
func normalize(want []netip.Prefix) []netip.Prefix {
	norm := make([]netip.Prefix, 0, len(want))
	for _, p := range want {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if !slices.Contains(norm, p) {
			norm = append(norm, p)
		}
	}
	return norm
}

// desired is the routes want asks for under the plan.
func (p plan) desired(want []netip.Prefix) []route {
	var out []route
	for _, pfx := range normalize(want) {
		if t, ok := p.tableFor(pfx); ok {
			out = append(out, route{pfx, t})
		}
	}
	return out
}

// CheckRoutes is the package's CheckRoutes for a reload, plus what only a
// running interface can tell: a reload may not start or end a full tunnel
// (its policy routing and fwmark are set up at start), and no new route
// may conflict with one already in its table. It changes nothing.
func (i *Interface) CheckRoutes(want []netip.Prefix, endpoints []netip.AddrPort) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := CheckRoutes(want, endpoints, i.plan.mode); err != nil {
		return err
	}
	if err := i.checkFullTunnelLocked(want); err != nil {
		return err
	}
	_, err := i.conflictsLocked(i.plan.desired(want))
	return err
}

// checkFullTunnelLocked refuses a change of the families routed by
// policy.
func (i *Interface) checkFullTunnelLocked(want []netip.Prefix) error {
	if i.plan.mode != TableAuto {
		return nil
	}
	if got := defaults(want); got != i.plan.full {
		return fmt.Errorf("%w: the new AllowedIPs have %s, the running tunnel %s; starting or ending a full tunnel needs a restart",
			ErrFullTunnel, describeFull(got), describeFull(i.plan.full))
	}
	return nil
}

// SetRoutes makes the routes through the interface those of want (as the
// plan places them): it adds the missing ones and removes those it added
// before that are no longer wanted. It refuses (ErrRouteConflict) a
// prefix that another route in its table already has; only the kernel's
// own route for the subnet of one of the interface's addresses is left
// in place. Used at start and on reload.
func (i *Interface) SetRoutes(want []netip.Prefix) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.checkFullTunnelLocked(want); err != nil {
		return err
	}
	return i.setRoutesLocked(want)
}

func (i *Interface) setRoutesLocked(want []netip.Prefix) error {
	desired := i.plan.desired(want)
	add, err := i.conflictsLocked(desired)
	if err != nil {
		return err
	}
	var keep []route
	var delErr error
	for _, r := range i.routes {
		if slices.Contains(desired, r) {
			keep = append(keep, r)
			continue
		}
		if err := i.rt.DelRoute(i.name, r.Prefix, r.Table); err != nil && !gone(err) {
			keep = append(keep, r) // still there, still ours
			if delErr == nil {
				delErr = fmt.Errorf("%w: removing route %s: %v", ErrSetup, r, err)
			}
		}
	}
	i.routes = keep
	if delErr != nil {
		return delErr
	}
	for _, r := range add {
		err := i.rt.AddRoute(i.name, r.Prefix, r.Table)
		if errors.Is(err, syscall.EEXIST) {
			// Added by someone else since conflictsLocked looked.
			return fmt.Errorf("%w: route %s via %s: another route for %s appeared meanwhile", ErrRouteConflict, r, i.name, r.Prefix)
		}
		if err != nil {
			return fmt.Errorf("%w: route %s via %s: %v", ErrSetup, r, i.name, err)
		}
		i.routes = append(i.routes, r)
	}
	return nil
}

// conflictsLocked looks at the tables of the desired routes that are not
// ours yet and returns those to add. A route with the same prefix in the
// same table (any metric, any interface, a blackhole too) is a conflict:
// whichever the kernel picks, the prefix would not reliably go through
// the tunnel. The kernel's own route for an address's subnet on this
// interface is no conflict; that prefix needs no route of ours. Nor are
// our own unreachable routes, which sit behind the interface's.
func (i *Interface) conflictsLocked(desired []route) ([]route, error) {
	var todo []route
	for _, r := range desired {
		if !slices.Contains(i.routes, r) {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	self, err := i.rt.Link(i.name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSetup, i.name, err)
	}
	tables := map[int][]tunio.Route{}
	var add []route
	for _, r := range todo {
		existing, ok := tables[r.Table]
		if !ok {
			if existing, err = i.rt.Routes(r.Table); err != nil {
				return nil, fmt.Errorf("%w: reading table %d: %v", ErrSetup, r.Table, err)
			}
			tables[r.Table] = existing
		}
		kernels := false
		for _, e := range existing {
			if e.Dst != r.Prefix || i.isFailRouteLocked(e) {
				continue
			}
			if i.kernelSubnetRoute(e, self.Index) {
				kernels = true
				continue
			}
			return nil, conflictError(r.Prefix, e, i.name)
		}
		if !kernels {
			add = append(add, r)
		}
	}
	return add, nil
}

// conflictError is the refusal of prefix, which route e already has.
func conflictError(prefix netip.Prefix, e tunio.Route, name string) error {
	return fmt.Errorf("%w: AllowedIPs %s: the route %q is already there, so this prefix would not go through %s but leave unencrypted; "+
		"remove that route or leave the prefix out of AllowedIPs", ErrRouteConflict, prefix, e.String(), name)
}

// kernelSubnetRoute reports the kernel's own route for the subnet of one
// of our addresses, on our interface.
func (i *Interface) kernelSubnetRoute(e tunio.Route, index int) bool {
	if e.DevIndex != index || e.Protocol != tunio.ProtoKernel {
		return false
	}
	return slices.ContainsFunc(i.addrs, func(a netip.Prefix) bool { return a.Masked() == e.Dst })
}

// restoreRoutesLocked adds back the routes of ours that are missing from
// their tables and returns them; a route another interface took
// meanwhile is reported, not fought over.
func (i *Interface) restoreRoutesLocked() ([]string, error) {
	self, err := i.rt.Link(i.name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSetup, i.name, err)
	}
	tables := map[int][]tunio.Route{}
	var restored []string
	var first error
	for _, r := range i.routes {
		existing, ok := tables[r.Table]
		if !ok {
			if existing, err = i.rt.Routes(r.Table); err != nil {
				return restored, fmt.Errorf("%w: reading table %d: %v", ErrSetup, r.Table, err)
			}
			tables[r.Table] = existing
		}
		present := false
		for _, e := range existing {
			if e.Dst != r.Prefix || i.isFailRouteLocked(e) {
				continue
			}
			if e.DevIndex == self.Index {
				present = true
				break
			}
			if first == nil {
				first = fmt.Errorf("%w: AllowedIPs %s: the route %q took its place while %s was down", ErrRouteConflict, r.Prefix, e.String(), i.name)
			}
		}
		if present {
			continue
		}
		if err := i.rt.AddRoute(i.name, r.Prefix, r.Table); err != nil {
			if first == nil {
				first = fmt.Errorf("%w: restoring route %s via %s: %v", ErrSetup, r, i.name, err)
			}
			continue
		}
		restored = append(restored, r.String())
	}
	return restored, first
}

// describeFull names the default routes among AllowedIPs.
func describeFull(full [2]bool) string {
	switch {
	case full[0] && full[1]:
		return "0.0.0.0/0 and ::/0"
	case full[0]:
		return "0.0.0.0/0 (not ::/0)"
	case full[1]:
		return "::/0 (not 0.0.0.0/0)"
	}
	return "neither 0.0.0.0/0 nor ::/0"
}
