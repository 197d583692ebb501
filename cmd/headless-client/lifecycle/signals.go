package lifecycle

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"pipeguard/cmd/headless-client/lifecycle/earlyhup"
)

// Signals are the signals a serving command handles. Make them with
// Catch, first thing in main; the zero value is not usable. Its methods
// are safe for concurrent use.
type Signals struct {
	stop chan os.Signal // SIGTERM, SIGINT
	hup  chan os.Signal // SIGHUP
	pipe chan os.Signal // SIGPIPE: caught only so that it is not fatal; never read
}

// Catch starts catching SIGTERM, SIGINT, SIGHUP and SIGPIPE. Call it
// first thing in main: until a signal is caught, Go's default for
// SIGHUP, SIGTERM and SIGINT is to exit at once, and a client still
// parsing its flags or loading its config died of an early reload
// (`systemctl reload` right after start). SIGHUP is caught earlier
// still, during package initialisation (package earlyhup), and Catch
// takes that channel over, with a SIGHUP that came before main in it.
// A SIGTERM or SIGINT before main ends the process, which has made
// nothing yet to undo. Signals that arrive before a command looks are
// kept: a stop ends the Context made later, and a reload waits on Hup.
//
// SIGPIPE: os/signal documents that a write to a broken pipe on file
// descriptor 1 or 2 kills a program that does not call Notify for
// SIGPIPE, while one that does gets EPIPE from the write, on any file
// descriptor. So a client whose stderr reader went away (`… 2>&1 | head`)
// loses its log lines but keeps its tunnel. Notify rather than
// signal.Ignore: an ignored SIGPIPE would stay ignored in the programs
// the client starts (exec keeps SIG_IGN), a caught one is reset.
func Catch() *Signals {
	s := &Signals{
		stop: make(chan os.Signal, 1),
		hup:  earlyhup.Take(),
		pipe: make(chan os.Signal, 1),
	}
	if s.hup == nil { // taken by an earlier Catch
		s.hup = make(chan os.Signal, 1)
		signal.Notify(s.hup, syscall.SIGHUP)
	}
	signal.Notify(s.stop, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.pipe, syscall.SIGPIPE)
	return s
}

// all is every channel of s.
func (s *Signals) all() []chan os.Signal { return []chan os.Signal{s.stop, s.hup, s.pipe} }

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
