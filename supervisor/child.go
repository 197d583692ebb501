package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// supervise runs c until it stops for good, restarting it after failures.
// It closes done when it returns, which is only after c's last Serve has
// returned. An escalation or terminate-tree request goes to r.fatal.
func (s *Supervisor) supervise(r *run, c *child, done chan<- struct{}) {
	defer close(done)
	defer c.setState(childStopped)
	ctx := r.ctx
	var (
		failures float64   // decayed failure count
		lastFail time.Time // when failures was last updated; meaningful if failures > 0
		backoff  time.Duration
	)
	for first := true; ; first = false {
		if ctx.Err() != nil {
			return // stopped while starting or in backoff: nothing is running
		}
		c.setState(childRunning)
		if first {
			s.emit(Event{Kind: EventStart, Child: c.name})
		} else {
			s.emit(Event{Kind: EventRestart, Child: c.name, Backoff: backoff, Restarts: c.restarts.Add(1)})
		}

		panicked, err := serveOnce(ctx, c.svc)

		switch {
		case ctx.Err() != nil:
			// Stopping: anything but nil or the context's own error is
			// worth a look, but there is nothing to restart.
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				err = nil
			}
			s.emit(Event{Kind: EventStop, Child: c.name, Err: err})
			return
		case panicked:
			// A panic is a failure whatever its value wraps.
		case errors.Is(err, ErrTerminateTree):
			s.emit(Event{Kind: EventTerminate, Child: c.name, Err: err})
			r.stop(fmt.Errorf("supervisor: %s: child %q terminated the tree: %w", s.name, c.name, err))
			return
		case err == nil, errors.Is(err, ErrDoNotRestart):
			c.setState(childStopped) // before the event, which tests wait for
			s.emit(Event{Kind: EventStop, Child: c.name, Err: err})
			return
		}

		c.setState(childRestarting)
		now := s.cfg.Clock.Now()
		if failures > 0 {
			halvings := float64(now.Sub(lastFail)) / float64(s.cfg.FailureDecay)
			failures *= math.Exp2(-halvings)
		}
		failures++
		lastFail = now

		if failures > s.cfg.FailureThreshold {
			s.emit(Event{Kind: EventFailure, Child: c.name, Err: err, Failures: failures})
			esc := &EscalationError{Supervisor: s.name, Child: c.name,
				Failures: failures, Threshold: s.cfg.FailureThreshold, Err: err}
			s.emit(Event{Kind: EventEscalate, Child: c.name, Err: esc, Failures: failures})
			r.stop(esc)
			return
		}
		backoff = s.backoff(failures)
		s.emit(Event{Kind: EventFailure, Child: c.name, Err: err, Failures: failures, Backoff: backoff})

		t := s.cfg.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// stop asks Serve to stop the tree with err. Only the first request is
// kept: the others come from children caught in the same shutdown, and they
// have been logged.
func (r *run) stop(err error) {
	select {
	case r.fatal <- err:
	default:
	}
}

// backoff is BackoffMin doubled for each failure beyond the first, capped at
// BackoffMax, then jittered. failures is fractional after decay, and so is
// the exponent, so the delay shrinks smoothly as failures age.
func (s *Supervisor) backoff(failures float64) time.Duration {
	d := float64(s.cfg.BackoffMin) * math.Exp2(failures-1)
	d = min(d, float64(s.cfg.BackoffMax))
	if j := min(s.cfg.BackoffJitter, 1); j > 0 { // above 1 a delay could go negative
		d *= 1 + j*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// serveOnce runs svc once, turning a panic into a *PanicError with the
// panicking goroutine's stack.
func serveOnce(ctx context.Context, svc Service) (panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked, err = true, &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return false, svc.Serve(ctx)
}
