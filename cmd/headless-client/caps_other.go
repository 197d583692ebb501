//go:build !linux

package main

import "errors"

// checkNetAdmin refuses outside Linux: the tunnel's TUN device, routes and
// capabilities are Linux's; the client is unsupported elsewhere.
func checkNetAdmin() error {
	return errors.New("headless-client: the tunnel is supported on Linux only")
}
