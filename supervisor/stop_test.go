package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"pipeguard/supervisor"
)

func TestOrderlyStop(t *testing.T) {
	tests := []struct {
		name    string
		ret     func(ctx context.Context) error // what the child returns once cancelled
		wantErr error                           // on its EventStop
	}{
		{"returns ctx.Err()", func(ctx context.Context) error { return ctx.Err() }, nil},
		{"returns nil", func(context.Context) error { return nil }, nil},
		{"returns a wrapped context error", func(ctx context.Context) error { return fmt.Errorf("read: %w", ctx.Err()) }, nil},
		{"returns another error", func(context.Context) error { return errFlaky }, errFlaky},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sup := supervisor.New("root", h.config(supervisor.Config{}))
			var mu sync.Mutex // guards stopped
			stopped := map[string]bool{}
			for _, name := range []string{"a", "b", "c"} {
				sup.Add(name, supervisor.ServiceFunc(func(ctx context.Context) error {
					<-ctx.Done()
					mu.Lock()
					stopped[name] = true
					mu.Unlock()
					return tt.ret(ctx)
				}))
			}
			cancel, wait := h.serve(sup)
			for _, name := range []string{"a", "b", "c"} {
				h.next("root", supervisor.EventStart, name)
			}
			cancel()
			if err := wait(); err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
			// Serve returned, so every child has returned: no waiting here.
			mu.Lock()
			defer mu.Unlock()
			for _, name := range []string{"a", "b", "c"} {
				if !stopped[name] {
					t.Errorf("child %s had not stopped when Serve returned", name)
				}
				e := h.next("root", supervisor.EventStop, name)
				if !errors.Is(e.Err, tt.wantErr) || (tt.wantErr == nil) != (e.Err == nil) {
					t.Errorf("%s: stop event Err = %v, want %v", name, e.Err, tt.wantErr)
				}
				if got := sup.Restarts(name); got != 0 {
					t.Errorf("%s restarted %d times during stop", name, got)
				}
			}
		})
	}
}

func TestStopDuringBackoff(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("root", h.config(supervisor.Config{BackoffMin: time.Hour}))
	child := &script{steps: []func() error{func() error { return errFlaky }}}
	sup.Add("flaky", child)
	cancel, wait := h.serve(sup)
	h.next("root", supervisor.EventFailure, "flaky")
	if err := h.clk.WaitTimers(h.ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if child.callCount() != 1 || sup.Restarts("flaky") != 0 {
		t.Errorf("child restarted during stop: %d calls", child.callCount())
	}
	if n := h.clk.Pending(); n != 0 {
		t.Errorf("%d timers left pending", n)
	}
}

func TestStopTimeoutNamesStuckChild(t *testing.T) {
	h := newHarness(t)
	const timeout = 3 * time.Second
	sup := supervisor.New("root", h.config(supervisor.Config{StopTimeout: timeout}))
	release := make(chan struct{})
	defer close(release) // lets the abandoned child return before goleak looks
	good, alsoGood := newBlocker(), newBlocker()
	sup.Add("good", good)
	sup.Add("stuck", supervisor.ServiceFunc(func(context.Context) error {
		<-release // ignores its context
		return nil
	}))
	sup.Add("also-good", alsoGood)
	cancel, wait := h.serve(sup)
	h.next("root", supervisor.EventStart, "stuck")
	<-good.started
	<-alsoGood.started
	cancel()
	// The fake stop timeout can expire in no real time at all, so let the
	// good children finish first: after their stop event only the deferred
	// close that Serve waits for remains, which a short real pause covers.
	h.next("root", supervisor.EventStop, "good")
	h.next("root", supervisor.EventStop, "also-good")
	time.Sleep(10 * time.Millisecond)

	h.advance(1, timeout-1)
	if h.clk.Pending() != 1 {
		t.Fatal("stop timer fired early")
	}
	h.clk.Advance(1)
	err := wait()
	if !errors.Is(err, supervisor.ErrStopTimeout) {
		t.Fatalf("Serve = %v, want ErrStopTimeout", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"stuck"`) || strings.Contains(msg, "good") {
		t.Errorf("error %q should name stuck and only stuck", msg)
	}
	h.next("root", supervisor.EventStopTimeout, "stuck")
	if logs := h.logs.String(); !strings.Contains(logs, "did not stop in time") || !strings.Contains(logs, "child=stuck") {
		t.Errorf("stuck child not logged:\n%s", logs)
	}
}

func TestTerminateTree(t *testing.T) {
	h := newHarness(t)
	root := supervisor.New("root", h.config(supervisor.Config{}))
	inner := supervisor.New("inner", h.config(supervisor.Config{}))
	leaves := []*blocker{newBlocker(), newBlocker(), newBlocker()}
	root.Add("a", leaves[0])
	root.Add("inner", inner)
	inner.Add("b", leaves[1])
	inner.Add("c", leaves[2])
	errBadConfig := errors.New("bad key file")
	inner.Add("loader", &script{steps: []func() error{func() error {
		for _, l := range leaves {
			<-l.started // terminate only once everyone runs
		}
		return fmt.Errorf("%w: %w", errBadConfig, supervisor.ErrTerminateTree)
	}}})

	_, wait := h.serve(root)
	err := wait()
	if !errors.Is(err, supervisor.ErrTerminateTree) || !errors.Is(err, errBadConfig) {
		t.Fatalf("Serve = %v, want ErrTerminateTree wrapping the child's error", err)
	}
	for _, want := range []string{`"inner"`, `"loader"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	for i, l := range leaves {
		if runs, stopped := l.counts(); runs != 1 || stopped != 1 {
			t.Errorf("leaf %d: %d runs, %d stopped; want 1, 1", i, runs, stopped)
		}
	}
	if root.Restarts("inner") != 0 {
		t.Error("root restarted inner instead of stopping")
	}
}

func TestNestedEscalationRestartsSubtree(t *testing.T) {
	h := newHarness(t)
	root := supervisor.New("root", h.config(supervisor.Config{BackoffJitter: -1}))
	inner := supervisor.New("inner", h.config(supervisor.Config{FailureThreshold: 1, BackoffJitter: -1}))
	sib := newBlocker()
	root.Add("sibling", sib)
	root.Add("inner", inner)
	worker := &script{steps: repeat(2, func() error { return errFlaky }), idle: make(chan struct{}, 1)}
	inner.Add("worker", worker)
	cancel, wait := h.serve(root)
	<-sib.started

	e := h.next("inner", supervisor.EventFailure, "worker")
	h.advance(1, e.Backoff)
	h.next("inner", supervisor.EventEscalate, "worker")

	// inner gave up; to root that is one failure of its child "inner".
	f := h.next("root", supervisor.EventFailure, "inner")
	if !errors.Is(f.Err, supervisor.ErrTooManyFailures) || !strings.Contains(f.Err.Error(), `"worker"`) {
		t.Fatalf("root saw inner fail with %v", f.Err)
	}
	h.advance(1, f.Backoff)
	if r := h.next("root", supervisor.EventRestart, "inner"); r.Restarts != 1 {
		t.Errorf("inner restart count %d", r.Restarts)
	}
	h.next("inner", supervisor.EventStart, "worker") // a fresh run, failure count reset
	<-worker.idle

	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if got := worker.callCount(); got != 3 {
		t.Errorf("worker ran %d times, want 3", got)
	}
	if runs, stopped := sib.counts(); runs != 1 || stopped != 1 {
		t.Errorf("sibling: %d runs, %d stopped; a subtree restart must not touch it", runs, stopped)
	}
	if root.Restarts("inner") != 1 || inner.Restarts("worker") != 1 {
		t.Errorf("restarts: inner %d, worker %d; want 1, 1", root.Restarts("inner"), inner.Restarts("worker"))
	}
}

func TestAddWhileServing(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("root", h.config(supervisor.Config{}))
	cancel, wait := h.serve(sup)

	const n = 8
	blockers := make([]*blocker, n)
	var wg sync.WaitGroup
	for i := range blockers {
		blockers[i] = newBlocker()
		wg.Go(func() { sup.Add(fmt.Sprint("w", i), blockers[i]) })
	}
	wg.Wait()
	for _, b := range blockers {
		select {
		case <-b.started:
		case <-time.After(waitLimit):
			t.Fatal("child added during Serve did not start")
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for i, b := range blockers {
		if runs, stopped := b.counts(); runs != 1 || stopped != 1 {
			t.Errorf("w%d: %d runs, %d stopped", i, runs, stopped)
		}
	}
}

func TestServeAgainAndConcurrently(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("root", h.config(supervisor.Config{}))
	b := newBlocker()
	sup.Add("b", b)
	for range 2 {
		cancel, wait := h.serve(sup)
		<-b.started
		if err := sup.Serve(context.Background()); !errors.Is(err, supervisor.ErrAlreadyServing) {
			t.Errorf("concurrent Serve = %v", err)
		}
		cancel()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if runs, stopped := b.counts(); runs != 2 || stopped != 2 {
		t.Errorf("%d runs, %d stopped over two Serves", runs, stopped)
	}
}

func TestAddMisuse(t *testing.T) {
	sup := supervisor.New("root", supervisor.Config{})
	sup.Add("x", newBlocker())
	for name, add := range map[string]func(){
		"duplicate": func() { sup.Add("x", newBlocker()) },
		"empty":     func() { sup.Add("", newBlocker()) },
		"nil":       func() { sup.Add("y", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Add did not panic", name)
				}
			}()
			add()
		}()
	}
	if sup.Restarts("unknown") != 0 {
		t.Error("Restarts of an unknown child")
	}
}

func TestEventKindString(t *testing.T) {
	if got := supervisor.EventRestart.String(); got != "restart" {
		t.Errorf("EventRestart = %q", got)
	}
	if got := supervisor.EventKind(99).String(); got != "EventKind(99)" {
		t.Errorf("EventKind(99) = %q", got)
	}
}
