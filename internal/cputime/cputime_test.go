package cputime

import (
	"testing"
	"time"
)

// TestProcessCountsWork: a busy loop of 50 ms adds CPU time, at least
// part of it (the scheduler may give the loop less than its wall time on
// a busy machine, never more than the process used in all).
func TestProcessCountsWork(t *testing.T) {
	before := Process()
	if before < 0 {
		t.Skip("no CPU time on this platform")
	}
	x := 0
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	if d := Process() - before; d <= 0 {
		t.Fatalf("CPU time grew by %v over a busy loop (%d rounds)", d, x)
	}
}
