package supervisor_test

import (
	"errors"
	"slices"
	"testing"

	"pipeguard/supervisor"
)

// TestHealth follows Health through a supervisor's life: not serving
// before Serve; healthy while every child runs; down while a child waits
// out its backoff and healthy again once it is restarted; down when a
// child finishes while the others run; not serving once stopped.
func TestHealth(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("root", h.config(supervisor.Config{}))
	steady := newBlocker()
	flaky := &script{steps: []func() error{func() error { return errFlaky }}, idle: make(chan struct{}, 1)}
	sup.Add("steady", steady)
	sup.Add("flaky", flaky)
	if err := sup.Health(); !errors.Is(err, supervisor.ErrNotServing) {
		t.Fatalf("Health before Serve = %v, want ErrNotServing", err)
	}
	cancel, wait := h.serve(sup)
	<-steady.started

	fail := h.next("root", supervisor.EventFailure, "flaky")
	var down *supervisor.DownError
	if err := sup.Health(); !errors.As(err, &down) || !slices.Equal(down.Restarting, []string{"flaky"}) || len(down.Stopped) != 0 {
		t.Fatalf("Health in backoff = %v, want a DownError with flaky restarting", err)
	}
	h.advance(1, fail.Backoff)
	<-flaky.idle
	if err := sup.Health(); err != nil {
		t.Fatalf("Health after the restart = %v, want nil", err)
	}

	done := &script{steps: []func() error{func() error { return nil }}}
	sup.Add("oneshot", done)
	h.next("root", supervisor.EventStop, "oneshot")
	if err := sup.Health(); !errors.As(err, &down) || !slices.Equal(down.Stopped, []string{"oneshot"}) || len(down.Restarting) != 0 {
		t.Fatalf("Health with a finished child = %v, want a DownError with oneshot stopped", err)
	}
	if want := `supervisor: root: children not running (stopped: oneshot)`; down.Error() != want {
		t.Errorf("Error() = %q, want %q", down.Error(), want)
	}

	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := sup.Health(); !errors.Is(err, supervisor.ErrNotServing) {
		t.Errorf("Health after Serve = %v, want ErrNotServing", err)
	}
}

// TestHealthEscalation: from the first failure of a child that keeps
// failing until its supervisor gives up, Health never reports healthy.
func TestHealthEscalation(t *testing.T) {
	h := newHarness(t)
	sup := supervisor.New("root", h.config(supervisor.Config{FailureThreshold: 2}))
	sup.Add("steady", newBlocker())
	sup.Add("bad", &script{steps: repeat(10, func() error { return errFlaky })})
	_, wait := h.serve(sup)
	for i := 0; ; i++ {
		e := h.next("root", supervisor.EventFailure, "bad")
		if err := sup.Health(); err == nil {
			t.Fatalf("Health after failure %d = nil", i+1)
		}
		if e.Backoff == 0 {
			break // given up
		}
		h.advance(1, e.Backoff)
	}
	var esc *supervisor.EscalationError
	if err := wait(); !errors.As(err, &esc) {
		t.Fatalf("Serve = %v, want an escalation", err)
	}
	if err := sup.Health(); !errors.Is(err, supervisor.ErrNotServing) {
		t.Errorf("Health after the escalation = %v, want ErrNotServing", err)
	}
}
