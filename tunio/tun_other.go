//go:build !linux

package tunio

import (
	"net/netip"
	"time"
)

// The TUN device and interface configuration are implemented for Linux
// only; elsewhere every call returns ErrUnsupported.

// CreateTUN returns ErrUnsupported outside Linux.
func CreateTUN(name string, mtu int) (Device, error) { return nil, ErrUnsupported }

// CreateTUNOptions returns ErrUnsupported outside Linux.
func CreateTUNOptions(name string, mtu int, opts TUNOptions) (Device, error) {
	return nil, ErrUnsupported
}

// SetMTU returns ErrUnsupported outside Linux.
func SetMTU(name string, mtu int) error { return ErrUnsupported }

// SetLinkUp returns ErrUnsupported outside Linux.
func SetLinkUp(name string) error { return ErrUnsupported }

// SetLinkDown returns ErrUnsupported outside Linux.
func SetLinkDown(name string) error { return ErrUnsupported }

// AddAddress returns ErrUnsupported outside Linux.
func AddAddress(name string, p netip.Prefix) error { return ErrUnsupported }

// DelAddress returns ErrUnsupported outside Linux.
func DelAddress(name string, p netip.Prefix) error { return ErrUnsupported }

// AddRoute returns ErrUnsupported outside Linux.
func AddRoute(name string, p netip.Prefix) error { return ErrUnsupported }

// DelRoute returns ErrUnsupported outside Linux.
func DelRoute(name string, p netip.Prefix) error { return ErrUnsupported }

// RTNL is unsupported outside Linux.
type RTNL struct{}

// OpenRTNL returns ErrUnsupported outside Linux.
func OpenRTNL() (*RTNL, error) { return nil, ErrUnsupported }

// Close does nothing.
func (r *RTNL) Close() {}

// Link returns ErrUnsupported outside Linux.
func (r *RTNL) Link(name string) (LinkState, error) { return LinkState{}, ErrUnsupported }

// SetMTU returns ErrUnsupported outside Linux.
func (r *RTNL) SetMTU(name string, mtu int) error { return ErrUnsupported }

// SetLinkUp returns ErrUnsupported outside Linux.
func (r *RTNL) SetLinkUp(name string) error { return ErrUnsupported }

// SetLinkDown returns ErrUnsupported outside Linux.
func (r *RTNL) SetLinkDown(name string) error { return ErrUnsupported }

// AddAddress returns ErrUnsupported outside Linux.
func (r *RTNL) AddAddress(name string, p netip.Prefix) error { return ErrUnsupported }

// DelAddress returns ErrUnsupported outside Linux.
func (r *RTNL) DelAddress(name string, p netip.Prefix) error { return ErrUnsupported }

// Addresses returns ErrUnsupported outside Linux.
func (r *RTNL) Addresses(name string) ([]netip.Prefix, error) { return nil, ErrUnsupported }

// AddRoute returns ErrUnsupported outside Linux.
func (r *RTNL) AddRoute(name string, p netip.Prefix, table int) error { return ErrUnsupported }

// DelRoute returns ErrUnsupported outside Linux.
func (r *RTNL) DelRoute(name string, p netip.Prefix, table int) error { return ErrUnsupported }

// AddUnreachable is unsupported outside Linux.
func (r *RTNL) AddUnreachable(p netip.Prefix, table, metric int) error { return ErrUnsupported }

// DelUnreachable is unsupported outside Linux.
func (r *RTNL) DelUnreachable(p netip.Prefix, table, metric int) error { return ErrUnsupported }

// Routes returns ErrUnsupported outside Linux.
func (r *RTNL) Routes(table int) ([]Route, error) { return nil, ErrUnsupported }

// AddRule returns ErrUnsupported outside Linux.
func (r *RTNL) AddRule(ru Rule) error { return ErrUnsupported }

// DelRule returns ErrUnsupported outside Linux.
func (r *RTNL) DelRule(ru Rule) error { return ErrUnsupported }

// Rules returns ErrUnsupported outside Linux.
func (r *RTNL) Rules(v6 bool) ([]Rule, error) { return nil, ErrUnsupported }

// TableInUse returns ErrUnsupported outside Linux.
func (r *RTNL) TableInUse(table int) (bool, error) { return false, ErrUnsupported }

// LinkEvents is unsupported outside Linux.
type LinkEvents struct{}

// SubscribeLinks returns ErrUnsupported outside Linux.
func SubscribeLinks() (*LinkEvents, error) { return nil, ErrUnsupported }

// Next returns ErrUnsupported outside Linux.
func (e *LinkEvents) Next() ([]LinkEvent, error) { return nil, ErrUnsupported }

// Close does nothing.
func (e *LinkEvents) Close() error { return nil }

// NetEvents is unsupported outside Linux.
type NetEvents struct{}

// SubscribeNet returns ErrUnsupported outside Linux.
func SubscribeNet() (*NetEvents, error) { return nil, ErrUnsupported }

// Next returns ErrUnsupported outside Linux.
func (e *NetEvents) Next(wait time.Duration) ([]NetEvent, error) { return nil, ErrUnsupported }

// Close does nothing.
func (e *NetEvents) Close() error { return nil }

// RouteOut returns ErrUnsupported outside Linux.
func (r *RTNL) RouteOut(dst, src netip.Addr, mark uint32) (int, error) { return 0, ErrUnsupported }
