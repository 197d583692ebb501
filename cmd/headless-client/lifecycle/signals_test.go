package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// TestBrokenStderr: with its stderr a pipe whose
// reader went away (`… 2>&1 | head -1`), the client died of SIGPIPE at
// its next log line (exit 141), once leaving its UAPI socket behind. With
// the signals caught, a write there fails with EPIPE and the process
// lives. The check runs in a child process (this test binary again),
// whose fd 2 is such a pipe.
func TestBrokenStderr(t *testing.T) {
	if os.Getenv("LIFECYCLE_BROKEN_STDERR") == "1" {
		s := Catch()
		defer stopCatching(s)
		for range 3 {
			if _, err := os.Stderr.WriteString("a log line\n"); !errors.Is(err, syscall.EPIPE) {
				fmt.Printf("write to the broken stderr: %v\n", err)
				os.Exit(2)
			}
		}
		fmt.Println("alive after EPIPE")
		os.Exit(0)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // no reader: writes to w raise SIGPIPE
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStderr$")
	cmd.Env = append(os.Environ(), "LIFECYCLE_BROKEN_STDERR=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, w
	err = cmd.Run()
	if err != nil || !strings.Contains(out.String(), "alive after EPIPE") {
		t.Fatalf("child with a broken stderr: %v\n%s", err, out.String())
	}
}
