// Package supervisor runs goroutines under supervision: a child that fails
// (returns an error or panics) is restarted after an exponential backoff with
// jitter, and a child that fails too often makes its supervisor give up and
// return an error, so the process exits non-zero with a line that names the
// child and its last error.
//
// The contract is suture's: a child is a [Service] whose Serve(ctx) blocks
// until the child has truly stopped. What Serve returns decides what happens
// next:
//
//   - nil or a context error after ctx was cancelled: a clean stop.
//   - nil while the supervisor is not stopping: the child is done and is not
//     restarted (a finished job is not a failure).
//   - an error wrapping [ErrDoNotRestart]: likewise done, not restarted.
//   - an error wrapping [ErrTerminateTree]: the supervisor stops all its
//     children and returns an error wrapping ErrTerminateTree, which its own
//     parent treats the same way, up to the root.
//   - any other error, or a panic: a failure. The child is restarted after a
//     backoff unless its failure count passes the threshold, in which case
//     Serve returns an [*EscalationError].
//
// Failures are counted per child with exponential decay (suture v4's scheme):
// at each failure the count is halved once per FailureDecay elapsed since the
// last one, then incremented. Spaced-out failures keep it near 1; a burst
// drives it past FailureThreshold. The same count sets the backoff, which
// doubles with each rapid failure and shrinks again as the count decays.
//
// A [*Supervisor] is itself a Service, so supervisors nest; a parent treats
// its child supervisor's escalation as one failure of that child.
//
// Why not suture itself: we need a clock that tests can advance
// (package [pipeguard/supervisor/clock]), typed events with per-child restart
// counters for the pipeline's statistics, and escalation as a returned error
// rather than a pause; written here, that is a few hundred readable lines
// with no dependency.
package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/supervisor/clock"
)

// Service is a supervised goroutine. Serve blocks until the service has
// stopped, and must return soon after ctx is cancelled. It is called again
// for each restart, so it must leave nothing running when it returns.
type Service interface {
	Serve(ctx context.Context) error
}

// ServiceFunc adapts a function to [Service].
type ServiceFunc func(ctx context.Context) error

// Serve calls f(ctx).
func (f ServiceFunc) Serve(ctx context.Context) error { return f(ctx) }

// Defaults for the zero fields of [Config].
const (
	DefaultFailureDecay     = 30 * time.Second // suture's default
	DefaultFailureThreshold = 5                // suture's default
	DefaultBackoffMin       = 10 * time.Millisecond
	DefaultBackoffMax       = 10 * time.Second
	DefaultBackoffJitter    = 0.2
	DefaultStopTimeout      = 10 * time.Second
)

// Config tunes a [Supervisor]. Its zero value uses the defaults above, logs
// nowhere and runs on the real clock.
type Config struct {
	// Log receives the supervisor's events, with the attribute
	// supervisor=name added. Nil discards them.
	Log *slog.Logger
	// Clock times backoffs, failure decay and the stop timeout. Nil is
	// clock.Real.
	Clock clock.Clock
	// FailureDecay is the half-life of a child's failure count.
	FailureDecay time.Duration
	// FailureThreshold is the decayed failure count a child may reach; the
	// failure that takes it above makes the supervisor give up.
	FailureThreshold float64
	// BackoffMin is the delay before restarting a child after an isolated
	// failure; it doubles with each rapid failure, up to BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// BackoffJitter randomises each delay by up to ± this fraction (after
	// the BackoffMax cap, at most 1), so restarted workers do not fail in
	// lockstep. Zero means DefaultBackoffJitter; negative disables jitter.
	BackoffJitter float64
	// StopTimeout bounds how long Serve waits for children to return once
	// they have been told to stop.
	StopTimeout time.Duration
	// EventHook, if set, is called with every event, synchronously from the
	// supervisor's goroutines; it must be safe for concurrent use and quick.
	EventHook func(Event)
}

// Supervisor runs its children, restarts them when they fail, and stops
// them in order. Make one with [New]; the zero value is not usable.
//
// Add, Restarts and Serve are safe for concurrent use. Serve may be called
// again after it returns (a parent supervisor restarting it): every child is
// started afresh, with its failure count reset and its restart count kept.
type Supervisor struct {
	name string
	cfg  Config // defaults filled in
	log  *slog.Logger

	mu       sync.Mutex // guards children, byName, run and run.runners
	children []*child   // in the order added
	byName   map[string]*child
	run      *run // non-nil while Serve runs
}

// child is one added service. restarts and state are shared with readers
// of Restarts and Health; everything else is fixed once added.
type child struct {
	name     string
	svc      Service
	restarts atomic.Uint64
	state    atomic.Int32 // a childState, written by the child's supervise goroutine
}

// run is the state of one call to Serve.
type run struct {
	ctx     context.Context // cancelled to stop every child
	fatal   chan error      // capacity 1: the first escalation or terminate-tree wins
	runners []runner        // guarded by Supervisor.mu
}

type runner struct {
	c    *child
	done chan struct{} // closed when the child's goroutine has returned
}

var _ Service = (*Supervisor)(nil)

// New returns a supervisor called name (used in logs, events and errors).
func New(name string, cfg Config) *Supervisor {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	setDefault(&cfg.FailureDecay, DefaultFailureDecay)
	setDefault(&cfg.FailureThreshold, DefaultFailureThreshold)
	setDefault(&cfg.BackoffMin, DefaultBackoffMin)
	setDefault(&cfg.BackoffMax, DefaultBackoffMax)
	setDefault(&cfg.BackoffJitter, DefaultBackoffJitter)
	setDefault(&cfg.StopTimeout, DefaultStopTimeout)
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	return &Supervisor{
		name:   name,
		cfg:    cfg,
		log:    cfg.Log.With("supervisor", name),
		byName: make(map[string]*child),
	}
}

func setDefault[T time.Duration | float64](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// String returns the supervisor's name.
func (s *Supervisor) String() string { return s.name }

// Add adds a child called name. If the supervisor is serving, the child
// starts at once; otherwise it starts with the next Serve. Names are unique
// within a supervisor: Add panics on a duplicate or empty name, or a nil
// service, since those are bugs in the caller.
func (s *Supervisor) Add(name string, svc Service) {
	if name == "" || svc == nil {
		panic("supervisor: Add with an empty name or a nil service")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.byName[name]; dup {
		panic("supervisor: Add: duplicate child name " + strconv.Quote(name))
	}
	c := &child{name: name, svc: svc}
	s.children = append(s.children, c)
	s.byName[name] = c
	if s.run != nil {
		s.startLocked(s.run, c)
	}
}

// Restarts returns how many times the child called name has been restarted,
// over all calls to Serve; 0 for an unknown name.
func (s *Supervisor) Restarts(name string) uint64 {
	s.mu.Lock()
	c := s.byName[name]
	s.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.restarts.Load()
}

// Serve starts every child and supervises them until ctx is cancelled, a
// child terminates the tree, or a child fails too often. It then cancels the
// children's context and waits up to StopTimeout for them to return.
//
// It returns nil after a clean stop; an error wrapping ErrTerminateTree or an
// *EscalationError if a child caused the stop; and, joined to either, an
// error wrapping ErrStopTimeout that names the children still running (they
// are abandoned, and may still be running if Serve is called again).
// Children that finish on their own do not end Serve, so that Add can still
// start more.
func (s *Supervisor) Serve(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{ctx: ctx, fatal: make(chan error, 1)}

	s.mu.Lock()
	if s.run != nil {
		s.mu.Unlock()
		return ErrAlreadyServing
	}
	s.run = r
	for _, c := range s.children {
		s.startLocked(r, c)
	}
	n := len(s.children)
	s.mu.Unlock()

	s.log.Info("supervisor started", "children", n)
	defer func() {
		if err != nil {
			s.log.Error("supervisor stopped", "err", err)
		} else {
			s.log.Info("supervisor stopped")
		}
	}()

	select {
	case <-ctx.Done():
	case err = <-r.fatal:
	}
	cancel()

	s.mu.Lock()
	s.run = nil // from here Add only records children for the next Serve
	runners := r.runners
	s.mu.Unlock()

	if stuck := s.waitStopped(runners); len(stuck) > 0 {
		terr := fmt.Errorf("%w: supervisor %s: still running after %v: %s",
			ErrStopTimeout, s.name, s.cfg.StopTimeout, strings.Join(stuck, ", "))
		if err != nil {
			return fmt.Errorf("%w; %w", err, terr)
		}
		return terr
	}
	return err
}

// startLocked starts c's goroutine in run r; s.mu must be held, so that
// Serve's snapshot of r.runners includes every goroutine it must wait for.
func (s *Supervisor) startLocked(r *run, c *child) {
	done := make(chan struct{})
	c.setState(childStarting)
	r.runners = append(r.runners, runner{c: c, done: done})
	go s.supervise(r, c, done)
}

// waitStopped waits for the runners up to the stop timeout and returns the
// quoted names of those still running.
func (s *Supervisor) waitStopped(runners []runner) []string {
	t := s.cfg.Clock.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	expired := false
	var stuck []string
	for _, rn := range runners {
		if !expired {
			select {
			case <-rn.done:
				continue
			case <-t.C():
				expired = true
			}
		}
		select {
		case <-rn.done:
		default:
			stuck = append(stuck, strconv.Quote(rn.c.name))
			s.emit(Event{Kind: EventStopTimeout, Child: rn.c.name})
		}
	}
	return stuck
}
