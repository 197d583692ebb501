package ifsetup

import (
	"fmt"
	"net/netip"

	"pipeguard/tunio"
)

// CheckConflicts is Up's refusal of an AllowedIPs prefix that another
// route in its table already has, for an interface
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

// Bypass is what a full tunnel of one family leaves outside the tunnel:
// the family ("IPv4" or "IPv6") whose default route AllowedIPs lack while
// the other's is there (Table auto), if the main table has routes of it
// that are not link-local, with those routes (as `ip route` shows them).
// Traffic of that family then leaves unencrypted; the start warns, and
// --check says so. "" when the config tunnels both families or neither,
// or when the other family has nowhere to go. It reads the main table and
// changes nothing.
func Bypass(routes []netip.Prefix, table int64) (family string, via []string, err error) {
	if table != TableAuto {
		return "", nil, nil
	}
	full := defaults(normalize(routes))
	if full[0] == full[1] {
		return "", nil, nil
	}
	family, v6 := "IPv6", true
	if full[1] {
		family, v6 = "IPv4", false
	}
	rt, err := tunio.OpenRTNL()
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	defer rt.Close()
	main, err := rt.Routes(tunio.MainTable)
	if err != nil {
		return "", nil, fmt.Errorf("%w: reading the main table: %v", ErrSetup, err)
	}
	for _, r := range main {
		a := r.Dst.Addr()
		if a.Is6() != v6 || r.Type != tunio.RouteUnicast || a.IsLinkLocalUnicast() && r.Dst.Bits() >= 10 || a.IsMulticast() {
			continue
		}
		via = append(via, r.String())
	}
	if len(via) == 0 {
		return "", nil, nil
	}
	return family, via, nil
}
