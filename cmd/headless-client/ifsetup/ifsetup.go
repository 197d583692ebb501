// Package ifsetup configures the tunnel's network interface around a
// running tunnel: MTU, addresses, link up, a route for every peer's
// AllowedIPs (IPv4 and IPv6), a full tunnel (0.0.0.0/0, ::/0) by policy
// routing as wg-quick sets it up, and optionally DNS (package dns).
// Everything it adds it records, and Down takes exactly
// that away again, so a stopped tunnel leaves the system as it found it;
// the policy rules, which outlive the interface, are also recorded in a
// state file, so the next start takes over or removes those of a run
// that was killed, and Cleanup finds them.
//
// A full tunnel fails closed (failclosed.go): unreachable routes in its
// table, which need no interface, drop its traffic whenever the
// interface cannot carry it (down, deleted, its process gone), and they
// and the rules are in place before the interface exists. Only Down (an
// explicit stop) and Cleanup take them away; Fail, a stop without one,
// keeps them.
//
// It refuses to route a prefix that another route in the same table
// already covers exactly: the kernel would keep the other route, and the
// prefix's traffic would leave unencrypted.
//
// The TUN device itself belongs to the tunnel (closing it removes the
// interface with its addresses and routes); this package configures it by
// name, over rtnetlink (package tunio), in the network namespace of the
// thread that called Up.
package ifsetup

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"pipeguard/cmd/headless-client/dns"
	"pipeguard/tunio"
)

// Errors.
var (
	ErrRouteLoop     = errors.New("ifsetup: a route would carry the tunnel's own packets into the tunnel")
	ErrRouteConflict = errors.New("ifsetup: another route already covers an AllowedIPs prefix")
	ErrFullTunnel    = errors.New("ifsetup: full-tunnel change")
	ErrSetup         = errors.New("ifsetup: interface setup failed")
)

// Table values besides table numbers, as wg-quick's Table key (and
// package config) has them.
const (
	// TableAuto: routes in the main table; 0.0.0.0/0 and ::/0 by policy
	// routing in a table of their own, with an fwmark on the tunnel's
	// sockets.
	TableAuto = 0
	// TableOff: no routes at all.
	TableOff = -1
)

// Config is what to set up.
type Config struct {
	Name      string
	MTU       int
	Addresses []netip.Prefix
	Routes    []netip.Prefix   // the peers' AllowedIPs
	Endpoints []netip.AddrPort // the peers' endpoints, which no route in the main table may cover
	Table     int64            // TableAuto, TableOff, or the table number for every route (as wg-quick's Table)
	FwMark    uint32           // the config's FwMark; a full tunnel uses it as its table; 0: none
	// StateFile records the policy rules and unreachable routes added,
	// so that a start after a crash takes them over or removes them, and
	// Cleanup finds them; "" records nothing (tests).
	StateFile string
	DNS       *dns.Request // applied last, if set
	// FailOpen leaves out the unreachable routes of a full tunnel's
	// families (failclosed.go): when the interface or the process goes,
	// their traffic falls through to the main table, as with wg-quick.
	FailOpen bool
	// BlockUntunneled routes the family a full tunnel of the other leaves
	// out (0.0.0.0/0 without ::/0, or the other way) by policy too, to a
	// table where only the unreachable route is: its traffic is dropped
	// instead of leaving outside the tunnel. Not with FailOpen.
	BlockUntunneled bool
}

// Interface is a configured interface. Its methods are safe for
// concurrent use: a reload and the link watcher's Restore may overlap.
type Interface struct {
	log  *slog.Logger
	name string
	rt   *tunio.RTNL

	mu         sync.Mutex     // guards the fields below
	addrs      []netip.Prefix // addresses we added
	routes     []route        // routes we added (not those the kernel made)
	plan       plan           // where routes go
	rules      []tunio.Rule   // policy rules we added (or took over)
	failRoutes []failRoute    // unreachable routes we added (or took over)
	stateFile  string
	// stale is what a crashed run recorded and this one has neither
	// taken over nor removed yet; adopted describes what it took over.
	// inherited is whether the crashed run had left anything.
	stale     state
	adopted   []string
	inherited bool
	dns       *dns.Applied
	down      bool // Down or Fail ran: nothing is ours any more, rt is closed
}

// route is a route through the interface: a prefix in a table.
type route struct {
	Prefix netip.Prefix
	Table  int
}

func (r route) String() string {
	if r.Table == tunio.MainTable {
		return r.Prefix.String()
	}
	return fmt.Sprintf("%s table %d", r.Prefix, r.Table)
}

// Up is Prepare and Configure in one, for an interface that exists
// already. On failure it undoes what it did and returns the error.
func Up(cfg Config, log *slog.Logger) (*Interface, error) {
	i, err := Prepare(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := i.Configure(cfg); err != nil {
		i.Abort()
		return nil, err
	}
	return i, nil
}

// Prepare does what needs no interface, before the interface exists: it
// takes over or removes what a crashed run of the same interface left
// (rules of a run that was killed would steer this one's traffic), picks
// the full tunnel's table and fwmark, and adds its unreachable routes and
// policy rules. From then on, a full tunnel's traffic goes nowhere until
// Configure routes it into the interface: a start has no moment when it
// could leave in cleartext. On failure it undoes what it did (Abort) and
// returns the error.
func Prepare(cfg Config, log *slog.Logger) (*Interface, error) {
	if err := CheckRoutes(cfg.Routes, cfg.Endpoints, cfg.Table); err != nil {
		return nil, err
	}
	if cfg.FailOpen && cfg.BlockUntunneled {
		return nil, fmt.Errorf("%w: blocking the untunneled family needs the fail-closed routes; it cannot go with fail-open", ErrSetup)
	}
	rt, err := tunio.OpenRTNL()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	i := &Interface{name: cfg.Name, log: log, rt: rt, stateFile: cfg.StateFile}
	if err := i.prepare(cfg); err != nil {
		i.Abort()
		return nil, err
	}
	return i, nil
}

func (i *Interface) prepare(cfg Config) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.loadStaleLocked()
	p, err := i.makePlan(cfg)
	if err != nil {
		return err
	}
	i.plan = p
	if err := i.addFailRoutesLocked(); err != nil {
		return err
	}
	if err := i.addPolicyLocked(); err != nil {
		return err
	}
	return i.removeStaleLocked()
}

// Configure sets up the interface Prepare prepared for (the TUN device
// must exist now): MTU, addresses, link up, the routes of AllowedIPs
// (with a full tunnel's default routes into its table), then DNS. On
// failure the caller undoes it all (Abort).
func (i *Interface) Configure(cfg Config) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.rt.SetMTU(i.name, cfg.MTU); err != nil {
		return fmt.Errorf("%w: MTU %d on %s: %v", ErrSetup, cfg.MTU, i.name, err)
	}
	for _, a := range cfg.Addresses {
		if err := i.rt.AddAddress(i.name, a); err != nil {
			return fmt.Errorf("%w: address %s on %s: %v", ErrSetup, a, i.name, err)
		}
		i.addrs = append(i.addrs, a)
	}
	if err := i.rt.SetLinkUp(i.name); err != nil {
		return fmt.Errorf("%w: link up %s: %v", ErrSetup, i.name, err)
	}
	if err := i.setRoutesLocked(cfg.Routes); err != nil {
		return err
	}
	dnsMode := dns.Disabled
	if cfg.DNS != nil {
		a, err := cfg.DNS.Apply()
		if err != nil {
			return err
		}
		i.dns = a
		if a != nil {
			dnsMode = cfg.DNS.Mode.Name()
		}
	}
	i.log.Info("interface up", "name", i.name, "mtu", cfg.MTU, "addresses", cfg.Addresses, "routes", i.routes,
		"full_tunnel", i.plan.families(), "fail_closed", i.failRoutesLocked(), "fwmark", i.plan.fwmark, "dns", dnsMode)
	return nil
}

// failRoutesLocked names the families whose unreachable routes are ours.
func (i *Interface) failRoutesLocked() []string {
	var out []string
	for _, r := range i.failRoutes {
		out = append(out, map[bool]string{false: "ipv4", true: "ipv6"}[r.V6])
	}
	return out
}

// FwMark is the firewall mark the tunnel's sockets must carry: a full
// tunnel's (its table number unless the config set FwMark), else the
// config's FwMark; 0 for none.
func (i *Interface) FwMark() uint32 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.plan.fwmark
}

// CheckFwMark refuses a new firewall mark for the tunnel's sockets while
// policy rules of this interface match on the one it has: every packet
// without that mark is routed into the tunnel, so the tunnel's own
// packets with another mark (or none) would be too, and the tunnel would
// carry nothing. Moving the rules instead cannot be done without a
// window: with the old rule and the new one both in place, every mark
// is routed into the tunnel. wg set's run-time change is refused (the
// UAPI answers EINVAL); FwMark in the config, with a restart, moves it.
func (i *Interface) CheckFwMark(mark uint32) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.rules) == 0 || mark == i.plan.fwmark {
		return nil
	}
	return fmt.Errorf("%w: fwmark %#x refused: the full tunnel's policy rules route every packet without fwmark %#x into table %d, "+
		"so the tunnel's own packets with another mark would go into the tunnel itself; set FwMark in the config and restart",
		ErrFullTunnel, mark, i.plan.fwmark, i.plan.policyTable)
}

// Routes returns the routes this package added, as text ("10.0.0.0/24",
// "0.0.0.0/0 table 51820").
func (i *Interface) Routes() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]string, 0, len(i.routes))
	for _, r := range i.routes {
		out = append(out, r.String())
	}
	return out
}

// Down removes the policy rules, routes and addresses it added and
// restores DNS. It tolerates an interface that is already gone (the
// tunnel closed the device, which takes its routes and addresses with
// it), and returns the first other error after trying everything.
func (i *Interface) Down() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.down {
		return nil
	}
	i.down = true
	var first error
	keep := func(err error) {
		if err != nil && !gone(err) && first == nil {
			first = err
		}
	}
	keep(i.removePolicyLocked())
	for _, r := range i.routes {
		keep(i.rt.DelRoute(i.name, r.Prefix, r.Table))
	}
	i.routes = nil
	for _, a := range i.addrs {
		keep(i.rt.DelAddress(i.name, a))
	}
	i.addrs = nil
	keep(i.revertDNSLocked())
	i.rt.Close()
	if first == nil {
		i.log.Info("interface configuration removed", "name", i.name)
	}
	return first
}

// RevertDNS takes the DNS setup away, and is done with it (Down then
// skips it): the client calls it first when it stops, while the link is
// still there. If it fails, Down tries again.
func (i *Interface) RevertDNS() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.revertDNSLocked()
}

func (i *Interface) revertDNSLocked() error {
	if err := i.dns.Revert(); err != nil {
		return err
	}
	i.dns = nil
	return nil
}

// Restore puts back what the interface lost while it was down (`ip link
// set IFACE down; up` removes its routes, and its IPv6 addresses): the
// addresses and routes this package added. The link watcher calls it when
// the link comes back up.
func (i *Interface) Restore() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.down {
		return nil
	}
	have, err := i.rt.Addresses(i.name)
	if err != nil {
		return fmt.Errorf("%w: addresses of %s: %v", ErrSetup, i.name, err)
	}
	var restored []string
	for _, a := range i.addrs {
		if slices.Contains(have, a) {
			continue
		}
		if err := i.rt.AddAddress(i.name, a); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("%w: address %s on %s: %v", ErrSetup, a, i.name, err)
		}
		restored = append(restored, a.String())
	}
	routes, err := i.restoreRoutesLocked()
	if err != nil {
		return err
	}
	restored = append(restored, routes...)
	if len(restored) > 0 {
		i.log.Info("link up again: restored what it lost", "name", i.name, "restored", restored)
	}
	return nil
}

// gone reports an error that means the interface, route or address no
// longer exists, which is what Down wants anyway.
func gone(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.EADDRNOTAVAIL) ||
		errors.Is(err, syscall.ENOENT) || errors.Is(err, tunio.ErrInvalidInterface)
}
