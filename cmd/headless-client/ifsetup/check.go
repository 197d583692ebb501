package ifsetup

import (
	"fmt"
	"net/netip"

	"pipeguard/tunio"
)

// CheckConflicts is Up's refusal of an AllowedIPs prefix that another
// route in its table already has (issue 14 item 2), for an interface
// name that does not exist yet: a start's preflight and --check run it
// before anything is made. It reads the routing tables and changes
// nothing. Before the interface exists no route can be the kernel's
// subnet route on it, so every route with the prefix conflicts, as in
// Up. A full tunnel's default routes go to a table Up picks because it is
// free, so they are not checked here.
func CheckConflicts(name string, routes []netip.Prefix, table int64) error {
	p := plan{mode: table}
	var want []route
	for _, r := range p.desired(routes) {
		if table == TableAuto && r.Prefix.Bits() == 0 {
			continue
		}
		want = append(want, r)
	}
	if len(want) == 0 {
		return nil
	}
	rt, err := tunio.OpenRTNL()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}
	defer rt.Close()
	tables := map[int][]tunio.Route{}
	for _, r := range want {
		existing, ok := tables[r.Table]
		if !ok {
			if existing, err = rt.Routes(r.Table); err != nil {
				return fmt.Errorf("%w: reading table %d: %v", ErrSetup, r.Table, err)
			}
			tables[r.Table] = existing
		}
		for _, e := range existing {
			if e.Dst == r.Prefix {
				return conflictError(r.Prefix, e, name)
			}
		}
	}
	return nil
}
