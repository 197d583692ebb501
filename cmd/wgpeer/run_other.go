//go:build !linux

package main

import (
	"errors"
	"log/slog"
)

// run is unsupported outside Linux: wgpeer configures the interface over
// rtnetlink.
func (c *cli) run(log *slog.Logger) error {
	return errors.New("unsupported on this platform (Linux only)")
}
