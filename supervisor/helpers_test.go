package supervisor_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/supervisor"
	"pipeguard/supervisor/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every real-time wait in these tests; nothing sleeps
// deliberately, so reaching it means a hang.
const waitLimit = 5 * time.Second

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// syncBuffer is a log sink safe to read while supervisor goroutines write.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness runs supervisors on one fake clock, collects their events in one
// channel and their logs in one buffer.
type harness struct {
	t       *testing.T
	clk     *clock.Fake
	logs    *syncBuffer
	events  chan supervisor.Event
	backlog []supervisor.Event // received but not yet asked for; used by the test goroutine only
	ctx     context.Context    // for waits on the fake clock
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return &harness{
		t:      t,
		clk:    clock.NewFake(t0),
		logs:   &syncBuffer{},
		events: make(chan supervisor.Event, 1024),
		ctx:    ctx,
	}
}

// config fills in the harness's clock, log and hook, and test-friendly
// settings (no jitter unless asked), over base.
func (h *harness) config(base supervisor.Config) supervisor.Config {
	base.Clock = h.clk
	base.Log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	base.EventHook = func(e supervisor.Event) {
		select {
		case h.events <- e:
		default: // a test producing this many events is broken anyway
		}
	}
	return base
}

// serve runs sup.Serve in a goroutine; cancel stops it and wait returns its
// error.
func (h *harness) serve(sup *supervisor.Supervisor) (cancel func(), wait func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- sup.Serve(ctx) }()
	h.t.Cleanup(cancel)
	return cancel, func() error {
		h.t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(waitLimit):
			h.t.Fatal("Serve did not return")
			return nil
		}
	}
}

// next returns the first event of kind for child of supervisor sup that
// next has not yet returned. Events of several goroutines interleave, so
// the others are kept for later calls rather than dropped.
func (h *harness) next(sup string, kind supervisor.EventKind, child string) supervisor.Event {
	h.t.Helper()
	match := func(e supervisor.Event) bool { return e.Supervisor == sup && e.Kind == kind && e.Child == child }
	for i, e := range h.backlog {
		if match(e) {
			h.backlog = append(h.backlog[:i], h.backlog[i+1:]...)
			return e
		}
	}
	timeout := time.After(waitLimit)
	for {
		select {
		case e := <-h.events:
			if match(e) {
				return e
			}
			h.backlog = append(h.backlog, e)
		case <-timeout:
			h.t.Fatalf("no %v event for %s/%s", kind, sup, child)
		}
	}
}

// advance waits until n timers are pending (so the code under test is
// waiting on the time it will be given), then moves the clock by d.
func (h *harness) advance(n int, d time.Duration) {
	h.t.Helper()
	if err := h.clk.WaitTimers(h.ctx, n); err != nil {
		h.t.Fatalf("waiting for %d pending timers: %v", n, err)
	}
	h.clk.Advance(d)
}

// blocker is a child that runs until its context is cancelled, counting its
// runs and clean returns.
type blocker struct {
	mu      sync.Mutex // guards runs, stopped
	runs    int
	stopped int
	started chan struct{} // receives once per run; capacity 16
}

func newBlocker() *blocker { return &blocker{started: make(chan struct{}, 16)} }

func (b *blocker) Serve(ctx context.Context) error {
	b.mu.Lock()
	b.runs++
	b.mu.Unlock()
	b.started <- struct{}{}
	<-ctx.Done()
	b.mu.Lock()
	b.stopped++
	b.mu.Unlock()
	return ctx.Err()
}

func (b *blocker) counts() (runs, stopped int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs, b.stopped
}

// script is a child whose first runs do what steps say, one step per run;
// after the steps run out it blocks like a blocker.
type script struct {
	mu    sync.Mutex // guards calls
	calls int
	steps []func() error
	idle  chan struct{} // if not nil, receives when a run starts blocking
}

func (s *script) Serve(ctx context.Context) error {
	s.mu.Lock()
	i := s.calls
	s.calls++
	s.mu.Unlock()
	if i < len(s.steps) {
		return s.steps[i]()
	}
	if s.idle != nil {
		s.idle <- struct{}{}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *script) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// repeat returns n copies of step.
func repeat(n int, step func() error) []func() error {
	steps := make([]func() error, n)
	for i := range steps {
		steps[i] = step
	}
	return steps
}
