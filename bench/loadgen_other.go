//go:build !linux

package bench

import (
	"context"
	"fmt"
)

// runLoadgen is unsupported outside Linux: network namespaces are Linux's.
func runLoadgen(ctx context.Context, cfg *Config) (*LoadgenReport, error) {
	return nil, fmt.Errorf("%w: network namespaces are Linux's", ErrNetnsUnavailable)
}
