//go:build !linux

package bench

import (
	"context"
	"fmt"

	"pipeguard/bench/core"
)

// runSoak is unsupported outside Linux: network namespaces are Linux's.
func runSoak(ctx context.Context, cfg *Config) (*SoakReport, error) {
	return nil, fmt.Errorf("%w: network namespaces are Linux's", core.ErrNetnsUnavailable)
}
