//go:build !linux

package tunio

import "net/netip"

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
