package supervisor

import (
	"errors"
	"fmt"
)

var (
	// ErrDoNotRestart, wrapped in the error a child's Serve returns, asks the
	// supervisor not to restart that child. It is not counted as a failure.
	ErrDoNotRestart = errors.New("supervisor: do not restart")

	// ErrTerminateTree, wrapped in the error a child's Serve returns, asks
	// its supervisor to stop every child and return. The supervisor's error
	// wraps it too, so a parent supervisor stops in turn, up to the root.
	ErrTerminateTree = errors.New("supervisor: terminate tree")

	// ErrTooManyFailures is wrapped by the [*EscalationError] that Serve
	// returns when a child failed more often than the failure threshold.
	ErrTooManyFailures = errors.New("supervisor: too many failures")

	// ErrStopTimeout is wrapped by the error Serve returns when children did
	// not return within the stop timeout; the error names them.
	ErrStopTimeout = errors.New("supervisor: children did not stop in time")

	// ErrAlreadyServing is returned by Serve when the supervisor is already
	// serving in another goroutine.
	ErrAlreadyServing = errors.New("supervisor: already serving")
)

// PanicError is the failure recorded when a child's Serve panics. Unwrap
// returns the panic value if it is an error; a panic is always treated as a
// failure, even if that error wraps ErrDoNotRestart or ErrTerminateTree.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack, from runtime/debug.Stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("supervisor: panic: %v", e.Value) }

func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// EscalationError is what Serve returns when a supervisor gives up on a
// child that failed too often. errors.Is matches both ErrTooManyFailures and
// the child's last error.
type EscalationError struct {
	Supervisor string  // name of the supervisor that gave up
	Child      string  // name of the child that failed
	Failures   float64 // its decayed failure count, above the threshold
	Threshold  float64
	Err        error // the child's last error
}

func (e *EscalationError) Error() string {
	return fmt.Sprintf("supervisor: %s: child %q failed too often (%.2f decayed failures > threshold %g), giving up: last error: %v",
		e.Supervisor, e.Child, e.Failures, e.Threshold, e.Err)
}

func (e *EscalationError) Unwrap() []error { return []error{ErrTooManyFailures, e.Err} }
