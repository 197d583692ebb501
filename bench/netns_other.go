//go:build !linux

package bench

import (
	"context"
	"fmt"

	"pipeguard/bench/core"
)

// runNetns is unsupported outside Linux: network namespaces are Linux's.
func runNetns(ctx context.Context, cfg *Config) (*NetnsReport, error) {
	return nil, fmt.Errorf("%w: network namespaces are Linux's", core.ErrNetnsUnavailable)
}
