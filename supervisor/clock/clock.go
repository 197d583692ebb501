// Package clock is the time source for code whose timers tests must control:
// restart backoff in package supervisor, protocol timers in the dataplane.
//
// Production code takes a [Clock] and is given [Real]; tests give it a
// [*Fake] and move time by hand with [Fake.Advance], so minutes of backoff or
// rekey intervals pass in microseconds and without sleeping.
//
// The interface is two methods on purpose: Now for measuring, NewTimer for
// waiting. A timer (rather than an After channel) can be stopped, so a
// goroutine that stops waiting early leaves nothing behind in a fake clock's
// pending set, which tests count.
package clock

import "time"

// Clock tells the time and makes timers. Implementations are safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on its channel once, d
	// from now. d <= 0 fires at once.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of [time.Timer] that code on a [Clock] needs. As with
// time.Timer since Go 1.23, no stale value is received from C after Stop or
// Reset returns.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether the timer was
	// still pending.
	Stop() bool
	// Reset re-arms the timer to fire d from now; it reports whether the
	// timer was still pending.
	Reset(d time.Duration) bool
}

// Real is the system clock. Its zero value is ready to use and it is safe for
// concurrent use.
type Real struct{}

var _ Clock = Real{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
