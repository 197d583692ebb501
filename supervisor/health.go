package supervisor

import (
	"errors"
	"fmt"
	"strings"
)

// childState is where a child is in its life, for Health.
type childState int32

const (
	childStarting   childState = iota // added; its goroutine has not run it yet
	childRunning                      // in Serve
	childRestarting                   // failed; waiting out its backoff (or being given up on)
	childStopped                      // returned for good, or never to run again in this Serve
)

func (c *child) setState(st childState) { c.state.Store(int32(st)) }

// ErrNotServing is what Health returns when Serve is not running (not
// yet, or no longer) or is stopping its children.
var ErrNotServing = errors.New("supervisor: not serving")

// DownError is what Health returns when the supervisor serves but some of
// its children are not running.
type DownError struct {
	Supervisor string
	// Restarting are the children that failed and wait out a backoff
	// before their restart; a failure count on its way to an escalation
	// keeps a child here most of the time.
	Restarting []string
	// Stopped are the children that returned for good (nil or
	// ErrDoNotRestart) while the supervisor goes on serving.
	Stopped []string
}

func (e *DownError) Error() string {
	var parts []string
	if len(e.Restarting) > 0 {
		parts = append(parts, "restarting after a failure: "+strings.Join(e.Restarting, ", "))
	}
	if len(e.Stopped) > 0 {
		parts = append(parts, "stopped: "+strings.Join(e.Stopped, ", "))
	}
	return fmt.Sprintf("supervisor: %s: children not running (%s)", e.Supervisor, strings.Join(parts, "; "))
}

// Health reports whether the supervisor is doing all its work at this
// moment: nil while Serve runs, is not stopping, and every child is
// running (or about to start); else [ErrNotServing] or a [*DownError]
// naming the children that are not running. It is what a watchdog asks
// before it tells the service manager that all is well, so it counts a
// child that finished as down: ask it only of supervisors whose children
// are meant to run for as long as it serves. A child that is itself a
// supervisor is reported by its own state here, not by its children's:
// ask it too if that matters.
//
// Health takes the supervisor's lock briefly and reads one atomic per
// child; it is safe to call from any goroutine at any time.
func (s *Supervisor) Health() error {
	s.mu.Lock()
	r := s.run
	children := s.children // Add only appends
	s.mu.Unlock()
	if r == nil || r.ctx.Err() != nil {
		return ErrNotServing
	}
	var e *DownError
	for _, c := range children {
		var list *[]string
		switch childState(c.state.Load()) {
		case childStarting, childRunning:
			continue
		case childRestarting:
			if e == nil {
				e = &DownError{Supervisor: s.name}
			}
			list = &e.Restarting
		case childStopped:
			if e == nil {
				e = &DownError{Supervisor: s.name}
			}
			list = &e.Stopped
		}
		*list = append(*list, c.name)
	}
	if e != nil {
		return e
	}
	return nil
}
