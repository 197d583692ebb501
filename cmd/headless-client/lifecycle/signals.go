package lifecycle

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Signals are the signals a serving command handles. Make them with
// Catch, first thing in main; the zero value is not usable. Its methods
// are safe for concurrent use.
type Signals struct {
	stop chan os.Signal // SIGTERM, SIGINT
	hup  chan os.Signal // SIGHUP
}

// Catch starts catching SIGTERM, SIGINT and SIGHUP. Call it first thing
// in main: until a signal is caught, Go's default for
// SIGHUP, SIGTERM and SIGINT is to exit at once, and a client still
// parsing its flags or loading its config died of an early reload
// (`systemctl reload` right after start). Signals that arrive before a
// command looks are kept: a stop ends the Context made later, and a
// reload waits on Hup.
func Catch() *Signals {
	s := &Signals{
		stop: make(chan os.Signal, 1),
		hup:  make(chan os.Signal, 1),
	}
	signal.Notify(s.stop, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.hup, syscall.SIGHUP)
	return s
}

// all is every channel of s.
func (s *Signals) all() []chan os.Signal { return []chan os.Signal{s.stop, s.hup} }

// Hup delivers SIGHUP; one that arrived earlier is waiting in it.
func (s *Signals) Hup() <-chan os.Signal { return s.hup }

// Context returns a context that is cancelled at the first SIGTERM or
// SIGINT, including one caught before the call; context.Cause names the
// signal. The returned cancel releases it.
func (s *Signals) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() { // returns when ctx ends, by a signal or by cancel
		select {
		case sig := <-s.stop:
			cancel(fmt.Errorf("%w: %v", context.Canceled, sig))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// Release gives the signals back to their default actions, for commands
// that do not serve (genkey, pubkey): Ctrl-C must stop them. A stop or
// hang-up that arrived while they were caught is raised again, so it
// still takes effect.
func (s *Signals) Release() {
	for _, ch := range s.all() {
		signal.Stop(ch)
	}
	for _, ch := range []chan os.Signal{s.stop, s.hup} {
		select {
		case sig := <-ch:
			syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		default:
		}
	}
}
