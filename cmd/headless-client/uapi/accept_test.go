package uapi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first errs accepts with EMFILE, as accept4 does
// for a process at its open-file limit, and counts every call.
type flakyListener struct {
	net.Listener
	errs  atomic.Int32
	calls atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.errs.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// countingHandler counts records at warn level and above.
type countingHandler struct {
	slog.Handler
	warns *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}

// TestAcceptErrorsBackOff: accept errors at the
// open-file limit once made Serve return (and the client spin on it).
// Now they are retried with a growing delay, a log line each, and the
// socket serves again once the errors stop.
func TestAcceptErrorsBackOff(t *testing.T) {
	tun, _ := newTunnel(t)
	path := t.TempDir() + "/t.sock"
	var warns atomic.Int32
	srv, err := Listen(path, tun, nil, slog.New(countingHandler{slog.DiscardHandler, &warns}))
	if err != nil {
		t.Fatal(err)
	}
	const failures = 6 // 5+10+20+40+80+160 ms of backoff
	fl := &flakyListener{Listener: srv.ln}
	fl.errs.Store(failures)
	srv.ln = fl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	// The connection waits in the backlog through the errors, then is
	// served.
	c := dial(t, path)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "get=1\n\n")
	answered := make(chan string, 1)
	go func() {
		var b strings.Builder
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == "\n" {
				answered <- b.String()
				return
			}
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("Serve returned on a temporary accept error: %v", err)
	case got := <-answered:
		if !strings.HasSuffix(got, "errno=0\n\n") {
			t.Fatalf("get after the accept errors: %q", got)
		}
	}
	// failures, the accept that got our connection, and the one waiting
	// now: a busy loop would have made thousands.
	if n := fl.calls.Load(); n > failures+2 {
		t.Errorf("%d accept calls for %d errors: not backing off", n, failures)
	}
	if n := warns.Load(); n != failures {
		t.Errorf("%d warnings for %d accept errors", n, failures)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

// TestAcceptBackoffStops: a stop during the backoff is prompt, even at
// the longest delay.
func TestAcceptBackoffStops(t *testing.T) {
	tun, _ := newTunnel(t)
	srv, err := Listen(t.TempDir()+"/t.sock", tun, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: srv.ln}
	fl.errs.Store(1 << 20)
	srv.ln = fl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); fl.calls.Load() < 9; { // past 5·2⁸ ms: at the 1 s cap
		select {
		case err := <-done:
			t.Fatalf("Serve returned on a temporary accept error: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d accept calls in 10 s", fl.calls.Load())
		}
	}
	begin := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d > 500*time.Millisecond {
			t.Errorf("stop during backoff took %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop during backoff")
	}
}
