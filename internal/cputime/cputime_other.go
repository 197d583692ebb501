//go:build !unix

package cputime

import "time"

// Process returns -1: this platform's CPU time is not read (PipeGuard
// runs on Linux; the benchmarks then report wall time only).
func Process() time.Duration { return -1 }
