package watchdog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/supervisor/clock"
	"pipeguard/supervisor/watchdog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPingsOnlyWhileHealthy: a ping follows every passing check and no
// failing one; each check is reported; the change each way is logged once.
func TestPingsOnlyWhileHealthy(t *testing.T) {
	const interval = 10 * time.Second
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	var health atomic.Pointer[error]
	nilErr := error(nil)
	health.Store(&nilErr)
	type result struct {
		pinged bool
		err    error
	}
	results := make(chan result, 1)
	pinged := false // touched by Run's goroutine only, between Ping and Report
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchdog.Run(ctx, watchdog.Config{
			Interval: interval,
			Check: func(now time.Time) error {
				if !now.Equal(clk.Now()) {
					t.Errorf("Check got %v, want the clock's %v", now, clk.Now())
				}
				return *health.Load()
			},
			Ping:   func() { pinged = true },
			Report: func(err error) { results <- result{pinged, err}; pinged = false },
			Log:    slog.New(slog.NewTextHandler(logs, nil)),
			Clock:  clk,
		})
	}()
	defer func() { cancel(); <-done }()

	wedged := errors.New("stage x stalled")
	for i, step := range []struct {
		health error
		ping   bool
	}{
		{nil, true},
		{nil, true},
		{wedged, false},
		{wedged, false},
		{nil, true},
	} {
		health.Store(&step.health)
		waitCtx, stop := context.WithTimeout(ctx, 5*time.Second)
		if err := clk.WaitTimers(waitCtx, 1); err != nil {
			t.Fatalf("step %d: Run armed no timer: %v", i, err)
		}
		stop()
		select {
		case r := <-results:
			t.Fatalf("step %d: a check before its time: %+v", i, r)
		default:
		}
		clk.Advance(interval)
		select {
		case r := <-results:
			if r.pinged != step.ping || !errors.Is(r.err, step.health) {
				t.Errorf("step %d: pinged %v, reported %v; want %v, %v", i, r.pinged, r.err, step.ping, step.health)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("step %d: no check", i)
		}
	}
	got := logs.String()
	if strings.Count(got, "pings withheld") != 1 || strings.Count(got, "pings resume") != 1 || !strings.Contains(got, "stage x stalled") {
		t.Errorf("want one line each way, with the reason; logged:\n%s", got)
	}
}
