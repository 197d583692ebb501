package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pipeguard/supervisor"
)

var errFlaky = errors.New("flaky: connection reset")

// panicHere panics from a named function, so the test can find it in the
// logged stack.
func panicHere() error { panic("boom") }

func TestChildOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		first       func() error
		wantKind    supervisor.EventKind // the event the first run's return produces
		wantRestart bool
		checkErr    func(error) bool // on the event's Err
	}{
		{"error restarts", func() error { return errFlaky }, supervisor.EventFailure, true,
			func(err error) bool { return errors.Is(err, errFlaky) }},
		{"panic restarts", panicHere, supervisor.EventFailure, true,
			func(err error) bool { var pe *supervisor.PanicError; return errors.As(err, &pe) && pe.Value == "boom" }},
		{"panic wrapping ErrDoNotRestart still restarts", func() error { panic(fmt.Errorf("x: %w", supervisor.ErrDoNotRestart)) },
			supervisor.EventFailure, true, func(err error) bool { return errors.Is(err, supervisor.ErrDoNotRestart) }},
		{"nil while running is done", func() error { return nil }, supervisor.EventStop, false,
			func(err error) bool { return err == nil }},
		{"ErrDoNotRestart is done", func() error { return fmt.Errorf("no peers configured: %w", supervisor.ErrDoNotRestart) },
			supervisor.EventStop, false, func(err error) bool { return errors.Is(err, supervisor.ErrDoNotRestart) }},
		{"context error while running is a failure", func() error { return context.Canceled }, supervisor.EventFailure, true,
			func(err error) bool { return errors.Is(err, context.Canceled) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sup := supervisor.New("root", h.config(supervisor.Config{}))
			child := &script{steps: []func() error{tt.first}}
			sup.Add("child", child)
			cancel, wait := h.serve(sup)

			h.next("root", supervisor.EventStart, "child")
			e := h.next("root", tt.wantKind, "child")
			if !tt.checkErr(e.Err) {
				t.Errorf("event Err = %v", e.Err)
			}
			if tt.wantRestart {
				if e.Backoff <= 0 {
					t.Errorf("failure event has Backoff %v", e.Backoff)
				}
				h.advance(1, e.Backoff)
				r := h.next("root", supervisor.EventRestart, "child")
				if r.Restarts != 1 || sup.Restarts("child") != 1 {
					t.Errorf("Restarts: event %d, counter %d, want 1", r.Restarts, sup.Restarts("child"))
				}
			}
			cancel()
			if err := wait(); err != nil {
				t.Fatalf("Serve = %v, want nil after a clean stop", err)
			}
			wantCalls := 1
			if tt.wantRestart {
				wantCalls = 2
			}
			if got := child.callCount(); got != wantCalls {
				t.Errorf("child ran %d times, want %d", got, wantCalls)
			}
			if h.clk.Pending() != 0 {
				t.Errorf("%d timers left pending", h.clk.Pending())
			}
		})
	}
}

func TestPanicStackLogged(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("pipeline", h.config(supervisor.Config{}))
	sup.Add("decrypt/0", &script{steps: []func() error{panicHere}})
	cancel, wait := h.serve(sup)
	h.next("pipeline", supervisor.EventFailure, "decrypt/0")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}

	var line string
	for l := range strings.SplitSeq(h.logs.String(), "\n") {
		if strings.Contains(l, "child failed") {
			line = l
		}
	}
	for _, want := range []string{"level=ERROR", "supervisor=pipeline", "child=decrypt/0", "boom", "stack=", "supervisor_test.panicHere"} {
		if !strings.Contains(line, want) {
			t.Errorf("failure log line lacks %q:\n%s", want, line)
		}
	}
}

func TestBackoffExponentialWithJitter(t *testing.T) {
	const (
		bmin = 10 * time.Millisecond
		bmax = time.Second
	)
	tests := []struct {
		name   string
		jitter float64 // config value
		spread float64 // allowed relative deviation from nominal
	}{
		{"no jitter", -1, 1e-4}, // the only deviation is the failure count's (tiny) decay
		{"jitter 0.2", 0.2, 0.2},
		{"jitter 0.5", 0.5, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sup := supervisor.New("root", h.config(supervisor.Config{
				BackoffMin: bmin, BackoffMax: bmax, BackoffJitter: tt.jitter,
				FailureThreshold: 100, FailureDecay: 1000 * time.Hour,
			}))
			sup.Add("flaky", &script{steps: repeat(12, func() error { return errFlaky })})
			cancel, wait := h.serve(sup)

			jittered := 0
			for i := range 12 {
				e := h.next("root", supervisor.EventFailure, "flaky")
				nominal := min(float64(bmin)*float64(int(1)<<i), float64(bmax))
				lo, hi := nominal*(1-tt.spread-1e-4), nominal*(1+tt.spread)
				if b := float64(e.Backoff); b < lo || b > hi {
					t.Errorf("failure %d: backoff %v outside [%v, %v]", i+1, e.Backoff, time.Duration(lo), time.Duration(hi))
				}
				if d := float64(e.Backoff)/nominal - 1; d > 1e-3 || d < -1e-3 {
					jittered++
				}

				// The restart waits for exactly the backoff on the clock.
				h.advance(1, e.Backoff-1)
				if h.clk.Pending() != 1 {
					t.Fatalf("failure %d: restarted before its backoff %v elapsed", i+1, e.Backoff)
				}
				h.clk.Advance(1)
				r := h.next("root", supervisor.EventRestart, "flaky")
				if r.Backoff != e.Backoff || r.Restarts != uint64(i+1) {
					t.Errorf("restart event %+v after failure %d with backoff %v", r, i+1, e.Backoff)
				}
			}
			if tt.jitter > 0 && jittered < 6 {
				t.Errorf("only %d of 12 backoffs were jittered", jittered)
			}
			if tt.jitter < 0 && jittered != 0 {
				t.Errorf("%d backoffs jittered with jitter disabled", jittered)
			}
			cancel()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFailureDecay(t *testing.T) {
	tests := []struct {
		name         string
		gap          time.Duration // clock advance after each failure; 0 means just the backoff
		failures     int           // how many times the child fails
		wantEscalate int           // the failure that escalates; 0 for none
	}{
		{"spaced failures do not escalate", 10 * time.Second, 20, 0},
		{"failures a half-life apart do not escalate", time.Second, 20, 0},
		{"rapid failures escalate past the threshold", 0, 20, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sup := supervisor.New("root", h.config(supervisor.Config{
				FailureDecay: time.Second, FailureThreshold: 3,
				BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, BackoffJitter: -1,
			}))
			sup.Add("flaky", &script{steps: repeat(tt.failures, func() error { return errFlaky })})
			cancel, wait := h.serve(sup)

			escalatedAt := 0
			for i := 1; i <= tt.failures; i++ {
				e := h.next("root", supervisor.EventFailure, "flaky")
				if e.Backoff == 0 {
					escalatedAt = i
					break
				}
				h.advance(1, max(tt.gap, e.Backoff))
				h.next("root", supervisor.EventRestart, "flaky")
			}
			if escalatedAt != tt.wantEscalate {
				t.Fatalf("escalated at failure %d, want %d", escalatedAt, tt.wantEscalate)
			}
			if tt.wantEscalate == 0 {
				cancel()
				if err := wait(); err != nil {
					t.Fatal(err)
				}
				if got := sup.Restarts("flaky"); got != uint64(tt.failures) {
					t.Errorf("Restarts = %d, want %d", got, tt.failures)
				}
				return
			}

			err := wait()
			var esc *supervisor.EscalationError
			if !errors.As(err, &esc) || !errors.Is(err, supervisor.ErrTooManyFailures) || !errors.Is(err, errFlaky) {
				t.Fatalf("Serve = %v, want an EscalationError wrapping the last error", err)
			}
			if esc.Child != "flaky" || esc.Supervisor != "root" || esc.Failures <= 3 {
				t.Errorf("EscalationError = %+v", esc)
			}
			for _, want := range []string{"supervisor: ", `"flaky"`, errFlaky.Error()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if !strings.Contains(h.logs.String(), "giving up") {
				t.Error("escalation not logged")
			}
			if got := sup.Restarts("flaky"); got != uint64(tt.wantEscalate-1) {
				t.Errorf("Restarts = %d, want %d", got, tt.wantEscalate-1)
			}
		})
	}
}

func TestEscalationStopsSiblings(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("root", h.config(supervisor.Config{FailureThreshold: 0.5}))
	sib := newBlocker()
	sup.Add("sibling", sib)
	sup.Add("flaky", &script{steps: []func() error{func() error { return errFlaky }}})
	_, wait := h.serve(sup)
	if err := wait(); !errors.Is(err, supervisor.ErrTooManyFailures) {
		t.Fatalf("Serve = %v", err)
	}
	if runs, stopped := sib.counts(); runs != stopped {
		t.Errorf("sibling ran %d times, returned %d", runs, stopped)
	}
}
