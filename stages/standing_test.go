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
