//go:build !linux

package bench

import (
	"context"
	"fmt"

	"pipeguard/bench/core"
	"pipeguard/wire"
)

// runLoadgen is unsupported outside Linux: network namespaces are Linux's.
func runLoadgen(ctx context.Context, cfg *Config) (*LoadgenReport, error) {
	return nil, fmt.Errorf("%w: network namespaces are Linux's", core.ErrNetnsUnavailable)
}

// mapRing returns n zeroed wire.Packets from the Go heap (the loadgen
// mode itself is Linux's; tests of the ring run anywhere).
func mapRing(n int) ([]wire.Packet, func() error, error) {
	return make([]wire.Packet, n), func() error { return nil }, nil
}
