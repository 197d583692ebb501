package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/cmd/headless-client/metrics"
	"pipeguard/tunio"
)

// fake is a Service: it serves until ctx ends, or returns what is sent on
// fail, or takes stopDelay to stop once ctx ends.
type fake struct {
	fail      chan error
	stopDelay time.Duration
	served    atomic.Int32
}

func newFake() *fake { return &fake{fail: make(chan error, 1)} }

func (f *fake) Serve(ctx context.Context) error {
	f.served.Add(1)
	select {
	case <-ctx.Done():
		time.Sleep(f.stopDelay)
		return nil
	case err := <-f.fail:
		return err
	}
}

// runAsync runs p and returns Run's result channel.
func runAsync(ctx context.Context, p Parts, hup <-chan os.Signal) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, p, hup, slog.New(slog.DiscardHandler)) }()
	return errc
}

// result waits up to within for Run's result.
func result(t *testing.T, errc <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v", within)
		return nil
	}
}

func TestRunStopsInOrderAndReloads(t *testing.T) {
	defer goleak.VerifyNone(t)
	tun, ua, web := newFake(), newFake(), newFake()
	reloads := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := runAsync(ctx, Parts{Tunnel: tun, UAPI: ua, HTTP: []Service{web},
		Reload: func(context.Context) { reloads <- struct{}{} }}, hup)
	hup <- syscall.SIGHUP
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after SIGHUP")
	}
	cancel()
	if err := result(t, errc, 5*time.Second); err != nil {
		t.Fatalf("orderly stop: %v", err)
	}
	for name, f := range map[string]*fake{"tunnel": tun, "uapi": ua, "http": web} {
		if f.served.Load() != 1 {
			t.Errorf("%s served %d times, want 1", name, f.served.Load())
		}
	}
}

func TestRunTunnelFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	tun, ua := newFake(), newFake()
	boom := errors.New("boom")
	errc := runAsync(context.Background(), Parts{Tunnel: tun, UAPI: ua}, nil)
	tun.fail <- boom
	if err := result(t, errc, 5*time.Second); !errors.Is(err, boom) {
		t.Fatalf("Run after the tunnel failed: %v, want it wrapped", err)
	}
}

func TestRunStopTimeout(t *testing.T) {
	tun, ua := newFake(), newFake()
	ua.stopDelay = StopTimeout + time.Second
	ctx, cancel := context.WithCancel(context.Background())
	errc := runAsync(ctx, Parts{Tunnel: tun, UAPI: ua}, nil)
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := result(t, errc, StopTimeout+5*time.Second); !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("Run with a part that does not stop: %v, want ErrStopTimeout", err)
	}
	time.Sleep(time.Second + 100*time.Millisecond) // let the slow fake go
}

// TestRunUAPIFailure: a UAPI server that stopped made
// the run loop read its nil result back at once, for ever, at full CPU.
// Now it ends the run with the error.
func TestRunUAPIFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	tun, ua := newFake(), newFake()
	broken := errors.New("accept: broken")
	errc := runAsync(context.Background(), Parts{Tunnel: tun, UAPI: ua}, nil)
	ua.fail <- broken
	if err := result(t, errc, 5*time.Second); !errors.Is(err, broken) {
		t.Fatalf("Run after the UAPI server failed: %v, want it wrapped", err)
	}
}

// TestRunInterfaceDeleted: a tunnel whose interface
// was deleted ends the run with an error that names the interface.
func TestRunInterfaceDeleted(t *testing.T) {
	defer goleak.VerifyNone(t)
	tun, ua := newFake(), newFake()
	errc := runAsync(context.Background(), Parts{Iface: "pg7", Tunnel: tun, UAPI: ua}, nil)
	tun.fail <- fmt.Errorf("supervisor: child terminated the tree: %w", tunio.ErrDeviceGone)
	err := result(t, errc, 5*time.Second)
	var de *DeletedError
	if !errors.As(err, &de) || de.Iface != "pg7" || err.Error() != "headless-client: interface pg7 was deleted" {
		t.Fatalf("Run after the interface was deleted: %v, want a *DeletedError for pg7", err)
	}
}

// TestHTTPGraceFitsStopTimeout: the HTTP endpoints' shutdown grace leaves
// the rest of the stop room within StopTimeout (were they
// equal, an idle connection would make every stop late).
func TestHTTPGraceFitsStopTimeout(t *testing.T) {
	if metrics.ShutdownGrace > StopTimeout/2 {
		t.Fatalf("metrics.ShutdownGrace %v leaves too little of StopTimeout %v", metrics.ShutdownGrace, StopTimeout)
	}
}

// TestRunStopDuringReload: a stop that comes while a reload runs finds
// the parts already returned when the loop looks again; that is still an
// orderly stop, not a part that "failed" (seen as exit 1 after SIGTERM
// when SIGHUPs kept the loop busy).
func TestRunStopDuringReload(t *testing.T) {
	defer goleak.VerifyNone(t)
	for i := range 20 {
		tun, ua := newFake(), newFake()
		hup := make(chan os.Signal, 1)
		ctx, cancel := context.WithCancel(context.Background())
		reload := func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond) // the parts return meanwhile
		}
		errc := runAsync(ctx, Parts{Tunnel: tun, UAPI: ua, Reload: reload}, hup)
		hup <- syscall.SIGHUP
		time.Sleep(5 * time.Millisecond)
		cancel()
		if err := result(t, errc, 5*time.Second); err != nil {
			t.Fatalf("run %d: stop during a reload: %v", i, err)
		}
	}
}

// ctxPart is a Service that keeps its ctx, for a test to look at.
type ctxPart struct{ ctx chan context.Context }

func (c *ctxPart) Serve(ctx context.Context) error {
	c.ctx <- ctx
	<-ctx.Done()
	return nil
}

// TestRunStoppingBeforeParts: a stop from outside reaches the parts only
// after Stopping has run, so Stopping can still use what they hold (the
// client restores DNS there while the tunnel's link exists: resolved's
// RevertLink needs the link).
func TestRunStoppingBeforeParts(t *testing.T) {
	defer goleak.VerifyNone(t)
	tun := &ctxPart{ctx: make(chan context.Context, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var stoppedEarly atomic.Int32
	var partCtx context.Context
	errc := runAsync(ctx, Parts{Tunnel: tun, UAPI: newFake(), Stopping: func() {
		if partCtx.Err() != nil {
			stoppedEarly.Add(1)
		}
	}}, nil)
	partCtx = <-tun.ctx
	cancel()
	if err := result(t, errc, 5*time.Second); err != nil {
		t.Fatalf("orderly stop: %v", err)
	}
	if stoppedEarly.Load() != 0 {
		t.Error("the tunnel was told to stop before Stopping ran")
	}
}

// TestRunServesWatchers: the link and address watchers are served beside
// the tunnel, one returning early ends nothing, and Run waits for them at
// the stop.
func TestRunServesWatchers(t *testing.T) {
	defer goleak.VerifyNone(t)
	tun, ua, link, addrs := newFake(), newFake(), newFake(), newFake()
	addrs.stopDelay = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	errc := runAsync(ctx, Parts{Tunnel: tun, UAPI: ua, Link: link, Addrs: addrs}, nil)
	for deadline := time.Now().Add(5 * time.Second); link.served.Load() == 0 || addrs.served.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watchers were not served")
		}
	}
	link.fail <- nil // a watcher whose interface went
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("Run returned when a watcher did: %v", err)
	default:
	}
	start := time.Now()
	cancel()
	if err := result(t, errc, 5*time.Second); err != nil {
		t.Fatalf("orderly stop: %v", err)
	}
	if d := time.Since(start); d < addrs.stopDelay {
		t.Fatalf("Run returned after %v, before the address watcher stopped", d)
	}
}
