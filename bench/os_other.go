//go:build !linux

package bench

import (
	"os"
	"runtime"
	"time"
)

// The harness targets Linux. Elsewhere it builds, but CPU time reads 0,
// the machine description is thin, and progress is one line per
// measurement.

func processCPU() time.Duration { return 0 }

func cpuModel() string { return "unknown" }

func kernel() string { return runtime.GOOS }

func loadAverage() string { return "" }

// IsTerminal reports false: unsupported outside Linux.
func IsTerminal(*os.File) bool { return false }
