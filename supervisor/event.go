package supervisor

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// EventKind says what happened to a child.
type EventKind int

const (
	// EventStart: the child's first Serve of this supervisor run begins.
	EventStart EventKind = iota + 1
	// EventStop: the child returned for good: a clean stop, nil (done), or
	// ErrDoNotRestart. Err is nil for a clean stop.
	EventStop
	// EventFailure: the child returned an error or panicked (Err is then a
	// *PanicError). Failures is its decayed count, Backoff the delay before
	// the restart (zero if the supervisor gives up instead).
	EventFailure
	// EventRestart: the child is started again after Backoff; Restarts is
	// its restart count including this one.
	EventRestart
	// EventEscalate: the supervisor gives up on the child; Err is the
	// *EscalationError that Serve returns.
	EventEscalate
	// EventTerminate: the child returned an error wrapping ErrTerminateTree.
	EventTerminate
	// EventStopTimeout: the child had not returned when the stop timeout
	// expired, and is abandoned.
	EventStopTimeout
)

var kindNames = [...]string{
	EventStart:       "start",
	EventStop:        "stop",
	EventFailure:     "failure",
	EventRestart:     "restart",
	EventEscalate:    "escalate",
	EventTerminate:   "terminate",
	EventStopTimeout: "stop-timeout",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is what a supervisor reports to its EventHook. Fields that do not
// apply to the kind are zero.
type Event struct {
	Kind       EventKind
	Supervisor string
	Child      string
	Time       time.Time // on the supervisor's clock
	Err        error
	Failures   float64       // EventFailure, EventEscalate
	Backoff    time.Duration // EventFailure, EventRestart
	Restarts   uint64        // EventRestart
}

// emit fills in the common fields, logs e and passes it to the hook.
func (s *Supervisor) emit(e Event) {
	e.Supervisor = s.name
	e.Time = s.cfg.Clock.Now()
	s.logEvent(e)
	if s.cfg.EventHook != nil {
		s.cfg.EventHook(e)
	}
}

func (s *Supervisor) logEvent(e Event) {
	level, msg := slog.LevelInfo, ""
	attrs := []slog.Attr{slog.String("child", e.Child)}
	if e.Err != nil {
		attrs = append(attrs, slog.Any("err", e.Err))
	}
	if pe, ok := e.Err.(*PanicError); ok {
		// Without the stack a panic's log line says what, not where.
		attrs = append(attrs, slog.String("stack", string(pe.Stack)))
	}
	switch e.Kind {
	case EventStart:
		msg = "child started"
	case EventStop:
		msg = "child stopped"
		if e.Err != nil {
			level, msg = slog.LevelWarn, "child stopped, not restarting"
		}
	case EventFailure:
		level, msg = slog.LevelError, "child failed"
		attrs = append(attrs, slog.Float64("failures", e.Failures))
		if e.Backoff > 0 {
			msg = "child failed, restarting after backoff"
			attrs = append(attrs, slog.Duration("backoff", e.Backoff))
		}
	case EventRestart:
		msg = "child restarted"
		attrs = append(attrs, slog.Uint64("restarts", e.Restarts), slog.Duration("backoff", e.Backoff))
	case EventEscalate:
		level, msg = slog.LevelError, "child failed too often, giving up"
		attrs = append(attrs, slog.Float64("failures", e.Failures))
	case EventTerminate:
		level, msg = slog.LevelWarn, "child terminated the tree"
	case EventStopTimeout:
		level, msg = slog.LevelError, "child did not stop in time, abandoned"
		attrs = append(attrs, slog.Duration("timeout", s.cfg.StopTimeout))
	}
	s.log.LogAttrs(context.Background(), level, msg, attrs...)
}
