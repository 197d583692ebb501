package stages

import (
	"testing"
	"time"
)

// TestStanding: on a fake clock, a kernel queue that reads keep finding
// non-empty stands once that has lasted the target, not before; a read
// that empties it starts the clock again.
func TestStanding(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		at    time.Duration
		empty bool // the read left the kernel's queue empty
		want  bool // stood, for a non-empty one
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a burst shorter than the target", []step{{1 * ms, false, false}, {1300 * time.Microsecond, false, false}, {1400 * time.Microsecond, true, false}}},
		{"a backlog that lasts", []step{{1 * ms, false, false}, {1200 * time.Microsecond, false, false}, {1500 * time.Microsecond, false, true}, {3 * ms, false, true}}},
		{"emptied in between", []step{{1 * ms, false, false}, {1400 * time.Microsecond, true, false}, {1450 * time.Microsecond, false, false}, {1600 * time.Microsecond, false, false}, {1950 * time.Microsecond, false, true}}},
		{"from the clock's first instant", []step{{0, false, false}, {400 * time.Microsecond, false, false}, {501 * time.Microsecond, false, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := standing{target: 500 * time.Microsecond}
			for i, st := range tc.steps {
				if st.empty {
					s.emptied()
					continue
				}
				if got := s.stood(st.at); got != st.want {
					t.Fatalf("step %d at %v: stood %v, want %v", i, st.at, got, st.want)
				}
			}
		})
	}
	zero := standing{}
	if !zero.stood(time.Second) {
		t.Fatal("with no target, a non-empty kernel queue stands at once")
	}
}

// TestStandingDirect: a read waited for goes direct while no backlog
// stands, and once one has stood for the target is queued; a read that
// drains the kernel's queue goes direct and stops the clock; a read
// without waiting is never direct and does not start the clock.
func TestStandingDirect(t *testing.T) {
	var m managedQueues
	s := standing{target: time.Hour}
	if s.direct(false, false, &m) || s.since != 0 {
		t.Fatal("a read without waiting went direct, or started the clock")
	}
	if !s.direct(true, false, &m) || s.since == 0 {
		t.Fatal("a full read waited for, within the target, did not go direct, or did not start the clock")
	}
	if !s.direct(true, true, &m) || s.since != 0 {
		t.Fatal("a read that drained the queue did not go direct, or left the clock running")
	}
	s.target = 0
	if s.direct(true, false, &m) {
		t.Fatal("a read waited for went direct with a backlog standing")
	}
}
