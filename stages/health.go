package stages

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"pipeguard/supervisor"
)

// The dataplane's health, for a watchdog: is every stage doing its work?
//
// A tunnel is healthy while
//   - its supervisor serves and every stage instance runs: none waits out
//     a backoff after a failure (a stage failing its way to an escalation
//     spends most of its time there), none has stopped for good, and the
//     tunnel is not stopping (supervisor.Supervisor.Health); and
//   - no stage is stalled: every input queue that has held values since
//     the stall bound ago has had some of them consumed since then. An
//     empty queue is an idle stage, a moving one a busy stage; values
//     that wait while the count consumed stands still are a wedge (a
//     stage stuck in a call, or waiting for room that never comes, which
//     also shows downstream).
//
// The check reads the positions the queues already publish and the
// counters the stages already keep, so it adds nothing to the data path.
// What it cannot see: the edge readers (udprecv, tunread, and the
// sequential engine's loops) and the timer actor wait for the socket, the
// device or the clock, and no queue of theirs tells idle from wedged;
// their failures reach it through the supervisor.

// ErrNotRunning is what HealthCheck.Check returns before Serve has
// started the stages, and once they are stopping.
var ErrNotRunning = errors.New("stages: tunnel not running")

// Stall is one input queue whose values wait with none consumed.
type Stall struct {
	Stage   string        // the stage that reads the queue
	Input   int           // which of its inputs (a pool worker's, or the one before a collector)
	Waiting int           // values waiting
	For     time.Duration // how long none has been consumed, at least
}

// StallError is what HealthCheck.Check returns for stalled stages.
type StallError struct{ Stalls []Stall }

func (e *StallError) Error() string {
	parts := make([]string, len(e.Stalls))
	for i, s := range e.Stalls {
		parts[i] = fmt.Sprintf("%s input %d: %d packets waiting, none taken for %v", s.Stage, s.Input, s.Waiting, s.For.Round(time.Millisecond))
	}
	return "stages: stalled: " + strings.Join(parts, "; ")
}

// HealthCheck judges a tunnel's health from one call of Check to the
// next; make one with Tunnel.NewHealthCheck. Check is safe for concurrent
// use, but the checker is meant for one watchdog loop.
type HealthCheck struct {
	t          *Tunnel
	stallAfter time.Duration

	mu   sync.Mutex  // guards seen
	seen []inputSeen // per input of every stage, in Stats order
}

// inputSeen is what the last Check saw of one input queue.
type inputSeen struct {
	consumed uint64
	// stuckSince is when the queue was first seen holding values with
	// consumed unchanged; zero while it is empty or moving.
	stuckSince time.Time
}

// NewHealthCheck returns a health check that calls a stage stalled when
// values wait in one of its inputs for stallAfter with none consumed.
// Checks must come more often than stallAfter to see that: a watchdog
// that checks every interval can pass the interval itself.
func (t *Tunnel) NewHealthCheck(stallAfter time.Duration) *HealthCheck {
	n := 0
	for _, e := range t.counters.stages {
		n += len(e.inputs)
	}
	return &HealthCheck{t: t, stallAfter: stallAfter, seen: make([]inputSeen, n)}
}

// Check returns nil if the tunnel is healthy at now (the real time of the
// call; tests may pass their own): ErrNotRunning, the supervisor's error
// (a *supervisor.DownError, wrapped) or a *StallError otherwise.
func (h *HealthCheck) Check(now time.Time) error {
	sup := h.t.sup.Load()
	if sup == nil {
		return ErrNotRunning
	}
	if err := sup.Health(); err != nil {
		if errors.Is(err, supervisor.ErrNotServing) {
			return ErrNotRunning
		}
		return fmt.Errorf("stages: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var stalls []Stall
	i := 0
	for _, e := range h.t.counters.stages {
		for j, in := range e.inputs {
			seen := &h.seen[i]
			i++
			waiting, _ := in.depth()
			consumed := in.consumed()
			if waiting == 0 || consumed != seen.consumed {
				*seen = inputSeen{consumed: consumed}
				continue
			}
			if seen.stuckSince.IsZero() {
				seen.stuckSince = now
			}
			if d := now.Sub(seen.stuckSince); d >= h.stallAfter {
				stalls = append(stalls, Stall{Stage: e.name, Input: j, Waiting: waiting, For: d})
			}
		}
	}
	if stalls != nil {
		return &StallError{Stalls: stalls}
	}
	return nil
}
