// Package cputime reports the CPU time a benchmark spent, beside the wall
// time Go's testing package reports: on a machine shared with other work,
// wall time per operation grows with the load, while CPU time per
// operation mostly does not. It covers the whole process (every thread,
// the garbage collector's too), so it suits benchmarks whose work runs in
// the benchmark's own process.
package cputime

import (
	"testing"
	"time"
)

// Meter measures the process's CPU time from Start to Report.
type Meter struct{ start time.Duration }

// Start begins a measurement.
func Start() Meter { return Meter{start: Process()} }

// Report adds a "cpu-ns/op" metric to b: the CPU time since m started,
// divided by b.N. Where the platform cannot tell (see Process), it adds
// nothing.
func (m Meter) Report(b *testing.B) {
	if m.start < 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(Process()-m.start)/float64(b.N), "cpu-ns/op")
}
