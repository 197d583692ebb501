package earlyhup

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestCaughtFromInit: the test binary's own SIGHUP, sent before anyone
// called Take, neither kills it nor is lost: it waits in the channel
// Take hands over, once; a second Take gets nothing.
func TestCaughtFromInit(t *testing.T) {
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Give the runtime's signal goroutine time to deliver it before Take,
	// as a SIGHUP during start-up would be.
	time.Sleep(20 * time.Millisecond)
	ch := Take()
	if ch == nil {
		t.Fatal("Take returned nil the first time")
	}
	defer signal.Stop(ch)
	select {
	case sig := <-ch:
		if sig != syscall.SIGHUP {
			t.Fatalf("got %v, want SIGHUP", sig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the SIGHUP sent before Take was lost")
	}
	if Take() != nil {
		t.Fatal("Take handed the channel over twice")
	}
}
