package tunio

import "net/netip"

// One-shot forms of the RTNL methods, each on a connection of its own in
// the network namespace of the calling thread; the headless client's
// interface setup keeps an RTNL instead.

// SetMTU sets the MTU of the interface name.
func SetMTU(name string, mtu int) error {
	return oneShot(func(r *RTNL) error { return r.SetMTU(name, mtu) })
}

// SetLinkUp brings the interface name up. See RTNL.SetLinkUp.
func SetLinkUp(name string) error { return oneShot(func(r *RTNL) error { return r.SetLinkUp(name) }) }

// SetLinkDown takes the interface name down.
func SetLinkDown(name string) error {
	return oneShot(func(r *RTNL) error { return r.SetLinkDown(name) })
}

// AddAddress adds the address p to the interface name. See RTNL.AddAddress.
func AddAddress(name string, p netip.Prefix) error {
	return oneShot(func(r *RTNL) error { return r.AddAddress(name, p) })
}

// DelAddress removes the address p from the interface name.
func DelAddress(name string, p netip.Prefix) error {
	return oneShot(func(r *RTNL) error { return r.DelAddress(name, p) })
}

// AddRoute routes the prefix p (IPv4 or IPv6) into the interface name, in
// the main table.
func AddRoute(name string, p netip.Prefix) error {
	return oneShot(func(r *RTNL) error { return r.AddRoute(name, p, MainTable) })
}

// DelRoute removes the route for p through the interface name from the
// main table.
func DelRoute(name string, p netip.Prefix) error {
	return oneShot(func(r *RTNL) error { return r.DelRoute(name, p, MainTable) })
}

func oneShot(fn func(*RTNL) error) error {
	r, err := OpenRTNL()
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}
