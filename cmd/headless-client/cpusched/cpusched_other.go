//go:build !linux

package cpusched

import (
	"errors"
	"fmt"
)

// Priority is the real-time priority the tunnel takes on Linux.
const Priority = 1

// ErrNotPermitted is wrapped when the process may not take real-time
// scheduling; elsewhere than on Linux it never may.
var ErrNotPermitted = errors.New("cpusched: real-time scheduling not permitted")

// Realtime is supported on Linux only.
func Realtime() (already bool, err error) {
	return false, fmt.Errorf("%w: supported on Linux only", ErrNotPermitted)
}

// IsRealtime is supported on Linux only.
func IsRealtime(tid int) (bool, error) { return false, nil }
