//go:build !linux

package peers

import (
	"context"
	"fmt"

	"pipeguard/bench/core"
)

// Measure is unsupported outside Linux: network namespaces are Linux's.
func Measure(ctx context.Context, cfg Config) (*Report, error) {
	return nil, fmt.Errorf("%w: network namespaces are Linux's", core.ErrNetnsUnavailable)
}
