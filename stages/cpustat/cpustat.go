// Package cpustat reads how contended the machine's CPUs are, for the
// pipeline's choice between spreading work over cores and doing it
// inline (package stages, spread.go).
package cpustat

import (
	"errors"
	"time"
)

// Pressure is the machine's CPU pressure stall time so far (Linux PSI,
// /proc/pressure/cpu, "some"): how long at least one runnable task waited
// for a CPU. The zero value is a valid (empty) reading.
type Pressure struct {
	Some time.Duration
}

// Share is the fraction of the wall time between readings a and b in
// which some task waited for a CPU: 0 on an idle or uncontended machine,
// near 1 when something always waits. It is 0 when the readings are not in
// order.
func Share(a, b Pressure, wall time.Duration) float64 {
	if wall <= 0 || b.Some < a.Some {
		return 0
	}
	return min(float64(b.Some-a.Some)/float64(wall), 1)
}

// ErrUnsupported is returned by Open where the system offers no reading
// (not Linux, or a kernel without PSI).
var ErrUnsupported = errors.New("cpustat: CPU pressure is not available on this system")
