package lifecycle

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopCatching undoes Catch without Release's raising of pending
// signals, which would end the test binary.
func stopCatching(s *Signals) {
	for _, ch := range s.all() {
		signal.Stop(ch)
	}
}

// TestSignalsKeepEarlyOnes: a SIGHUP and a SIGTERM that come after Catch
// but before the command asks (while it parses flags or loads its
// config) neither kill the process nor get lost: the reload waits on
// Hup, and the stop ends the Context made later.
func TestSignalsKeepEarlyOnes(t *testing.T) {
	s := Catch()
	defer stopCatching(s)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.Hup():
	case <-time.After(5 * time.Second):
		t.Fatal("the early SIGHUP was lost")
	}
	ctx, cancel := s.Context(context.Background())
	defer cancel()
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); !strings.Contains(cause.Error(), "terminated") {
			t.Errorf("cause %v, want the signal named", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the early SIGTERM did not end the context")
	}
}
