//go:build !linux

package loadgen

import (
	"context"
	"fmt"

	"pipeguard/bench/core"
	"pipeguard/wire"
)

// Measure is unsupported outside Linux: network namespaces are Linux's.
func Measure(ctx context.Context, cfg Config) (*Report, error) {
	return nil, fmt.Errorf("%w: network namespaces are Linux's", core.ErrNetnsUnavailable)
}

// mapRing returns n zeroed wire.Packets from the Go heap (the loadgen
// mode itself is Linux's; tests of the ring run anywhere).
func mapRing(n int) ([]wire.Packet, func() error, error) {
	return make([]wire.Packet, n), func() error { return nil }, nil
}
