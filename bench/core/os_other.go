//go:build !linux

package core

import (
	"os"
	"runtime"
	"time"
)

// The harness targets Linux. Elsewhere it builds, but CPU time reads 0,
// the machine description is thin, and progress is one line per
// measurement.

// ProcessCPU reads 0: unsupported outside Linux.
func ProcessCPU() time.Duration { return 0 }

// CPUModel is unknown outside Linux.
func CPUModel() string { return "unknown" }

// Kernel is the operating system's name outside Linux.
func Kernel() string { return runtime.GOOS }

// LoadAverage is unknown outside Linux.
func LoadAverage() string { return "" }

// IsTerminal reports false: unsupported outside Linux.
func IsTerminal(*os.File) bool { return false }
