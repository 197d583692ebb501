// Package ifsetup configures the tunnel's network interface around a
// running tunnel: MTU, addresses, link up, a route for every peer's
// AllowedIPs (IPv4 and IPv6), and optionally DNS (package dns).
// Everything it adds it records, and Down takes exactly that away again,
// so a stopped tunnel leaves the system as it found it.
//
// The TUN device itself belongs to the tunnel (closing it removes the
// interface); this package only configures it by name, over rtnetlink
// (package tunio), in the network namespace of the calling thread.
package ifsetup

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"syscall"

	"pipeguard/cmd/headless-client/dns"
	"pipeguard/tunio"
)

// Errors.
var (
	ErrRouteLoop = errors.New("ifsetup: a route would carry the tunnel's own packets into the tunnel")
	ErrSetup     = errors.New("ifsetup: interface setup failed")
)

// Config is what to set up.
type Config struct {
	Name      string
	MTU       int
	Addresses []netip.Prefix
	Routes    []netip.Prefix   // the peers' AllowedIPs
	Endpoints []netip.AddrPort // the peers' endpoints, which no route may cover
	DNS       *dns.Request     // applied last, if set
}

// Interface is a configured interface. Its methods are not safe for
// concurrent use; the client calls them from its main goroutine.
type Interface struct {
	name   string
	log    *slog.Logger
	addrs  []netip.Prefix
	routes []netip.Prefix // routes we added (not those the kernel made)
	dns    *dns.Applied
}

// Up configures the interface named cfg.Name (the TUN device must exist)
// and brings it up. On failure it undoes what it did and returns the
// error.
func Up(cfg Config, log *slog.Logger) (*Interface, error) {
	if err := CheckRoutes(cfg.Routes, cfg.Endpoints); err != nil {
		return nil, err
	}
	i := &Interface{name: cfg.Name, log: log}
	if err := i.up(cfg); err != nil {
		i.Down()
		return nil, err
	}
	return i, nil
}

func (i *Interface) up(cfg Config) error {
	if err := tunio.SetMTU(i.name, cfg.MTU); err != nil {
		return fmt.Errorf("%w: MTU %d on %s: %v", ErrSetup, cfg.MTU, i.name, err)
	}
	for _, a := range cfg.Addresses {
		if err := tunio.AddAddress(i.name, a); err != nil {
			return fmt.Errorf("%w: address %s on %s: %v", ErrSetup, a, i.name, err)
		}
		i.addrs = append(i.addrs, a)
	}
	if err := tunio.SetLinkUp(i.name); err != nil {
		return fmt.Errorf("%w: link up %s: %v", ErrSetup, i.name, err)
	}
	if err := i.SetRoutes(cfg.Routes); err != nil {
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
	i.log.Info("interface up", "name", i.name, "mtu", cfg.MTU, "addresses", cfg.Addresses, "routes", i.routes, "dns", dnsMode)
	return nil
}

// CheckRoutes refuses routes that cover a peer's endpoint: the encrypted
// packets to that peer would be routed into the tunnel itself. (A full
// tunnel, 0.0.0.0/0, needs policy routing, as wg-quick does with fwmark
// and a separate table; PipeGuard does not set that up.)
func CheckRoutes(routes []netip.Prefix, endpoints []netip.AddrPort) error {
	for _, r := range routes {
		for _, ep := range endpoints {
			if ep.IsValid() && r.Contains(ep.Addr().Unmap()) {
				return fmt.Errorf("%w: AllowedIPs %s contains the endpoint %s (full-tunnel routing is not supported)", ErrRouteLoop, r, ep)
			}
		}
	}
	return nil
}

// SetRoutes makes the routes through the interface those of want: it
// adds the missing ones and removes those it added before that are no
// longer wanted. A route the kernel already has through the interface
// (the subnet of an address) is left to the kernel. Used at start and on
// reload.
func (i *Interface) SetRoutes(want []netip.Prefix) error {
	norm := make([]netip.Prefix, 0, len(want))
	for _, p := range want {
		if p = p.Masked(); !slices.Contains(norm, p) {
			norm = append(norm, p)
		}
	}
	var keep []netip.Prefix
	for _, r := range i.routes {
		if slices.Contains(norm, r) {
			keep = append(keep, r)
			continue
		}
		if err := tunio.DelRoute(i.name, r); err != nil && !gone(err) {
			return fmt.Errorf("%w: removing route %s: %v", ErrSetup, r, err)
		}
	}
	i.routes = keep
	for _, r := range norm {
		if slices.Contains(i.routes, r) {
			continue
		}
		err := tunio.AddRoute(i.name, r)
		if errors.Is(err, syscall.EEXIST) {
			continue // the kernel's own route for an address's subnet
		}
		if err != nil {
			return fmt.Errorf("%w: route %s via %s: %v", ErrSetup, r, i.name, err)
		}
		i.routes = append(i.routes, r)
	}
	return nil
}

// Routes returns the routes this package added.
func (i *Interface) Routes() []netip.Prefix { return slices.Clone(i.routes) }

// Down removes the routes and addresses it added and restores DNS. It
// tolerates an interface that is already gone (the tunnel closed the
// device, which takes its routes and addresses with it), and returns the
// first other error after trying everything.
func (i *Interface) Down() error {
	var first error
	keep := func(err error) {
		if err != nil && !gone(err) && first == nil {
			first = err
		}
	}
	for _, r := range i.routes {
		keep(tunio.DelRoute(i.name, r))
	}
	i.routes = nil
	for _, a := range i.addrs {
		keep(tunio.DelAddress(i.name, a))
	}
	i.addrs = nil
	keep(i.RevertDNS())
	if first == nil {
		i.log.Info("interface configuration removed", "name", i.name)
	}
	return first
}

// RevertDNS takes the DNS setup away, and is done with it (Down then
// skips it): the client calls it first when it stops, while the link is
// still there. If it fails, Down tries again.
func (i *Interface) RevertDNS() error {
	if err := i.dns.Revert(); err != nil {
		return err
	}
	i.dns = nil
	return nil
}

// gone reports an error that means the interface, route or address no
// longer exists, which is what Down wants anyway.
func gone(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.EADDRNOTAVAIL) ||
		errors.Is(err, syscall.ENOENT) || errors.Is(err, tunio.ErrInvalidInterface)
}
