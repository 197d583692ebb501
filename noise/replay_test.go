package noise

import (
	"math"
	"testing"
)

// replayStep is one counter offered to the filter and the expected answer.
type replayStep struct {
	counter uint64
	want    bool
	why     string
}

func runReplaySteps(t *testing.T, f *ReplayFilter, steps []replayStep) {
	t.Helper()
	for i, s := range steps {
		if got := f.ValidateCounter(s.counter, RejectAfterMessages); got != s.want {
			t.Fatalf("step %d (%s): ValidateCounter(%d) = %v, want %v", i, s.why, s.counter, got, s.want)
		}
	}
}

// TestReplaySequence walks one filter through the classic cases, in the
// spirit of the Linux and wireguard-go tables: each step depends on the
// window left by the steps before it.
func TestReplaySequence(t *testing.T) {
	const w = ReplayWindowSize
	const edge = w + 1 // first counter that pushes 0 out of the window
	var f ReplayFilter // the zero value is ready to use
	runReplaySteps(t, &f, []replayStep{
		{0, true, "first counter on a zero filter"},
		{1, true, "in order"},
		{1, false, "duplicate"},
		{9, true, "gap ahead"},
		{8, true, "out of order inside window"},
		{7, true, "out of order inside window"},
		{7, false, "duplicate out of order"},
		{edge, true, "jump to the window's far edge"},
		{edge - 1, true, "just behind newest"},
		{edge - 1, false, "duplicate just behind newest"},
		{edge - 2, true, "behind newest"},
		{2, true, "oldest counter still inside (edge - w + 1)"},
		{2, false, "duplicate at the old edge"},
		{edge + 16, true, "slide by 16"},
		{3, false, "slid out of the window"},
		{edge + 16, false, "duplicate newest"},
		{edge * 4, true, "large jump clears the ring"},
		{edge*4 - w, true, "exactly window size behind: the last counter inside"},
		{edge*4 - w - 1, false, "one past the window"},
		{10, false, "far too old"},
		{edge*4 - w, false, "duplicate at the exact edge"},
		{edge*4 - (w - 1), true, "inside, untouched since the jump"},
		{0, false, "zero long gone"},
	})
}

// TestReplayLimit checks that counters at or above the limit are refused
// and never move the window, so an exhausted keypair stays dead.
func TestReplayLimit(t *testing.T) {
	var f ReplayFilter
	const r = RejectAfterMessages
	runReplaySteps(t, &f, []replayStep{
		{r, false, "limit itself"},
		{r - 1, true, "last valid counter"},
		{r, false, "limit after last valid"},
		{r - 1, false, "duplicate last valid"},
		{r - 2, true, "just behind"},
		{r + 1, false, "above limit"},
		{math.MaxUint64, false, "max uint64"},
		{r - 2, false, "duplicate"},
		{r - 3, true, "still inside"},
		{0, false, "far behind"},
	})
	// The limit is the caller's: a smaller one is honoured too.
	var g ReplayFilter
	if g.ValidateCounter(100, 100) || !g.ValidateCounter(99, 100) {
		t.Fatal("limit argument not honoured")
	}
}

// TestReplayBulk fills whole windows in both directions; these are the
// cases where an off-by-one in the ring's size shows.
func TestReplayBulk(t *testing.T) {
	const w = ReplayWindowSize
	tests := []struct {
		name  string
		fill  func(f *ReplayFilter) bool // offers a run of counters; all must pass
		after []replayStep
	}{
		{"ascending 1..w then 0", fillRange(1, w), []replayStep{{0, true, "0 is exactly w behind"}, {0, false, "dup"}}},
		{"ascending 2..w+1 then 1, 0", fillRange(2, w+1), []replayStep{{1, true, "1 is w behind"}, {0, false, "0 is w+1 behind"}}},
		{"descending w+1..1", fillRange(w+1, 1), nil},
		{"descending w+2..2 then 0", fillRange(w+2, 2), []replayStep{{0, false, "0 is w+2 behind"}}},
		{"descending w..1 then w+1, 0", fillRange(w, 1), []replayStep{{w + 1, true, "newest"}, {0, false, "w+1 behind"}}},
		{"descending w..1 then 0, w+1", fillRange(w, 1), []replayStep{{0, true, "w behind"}, {w + 1, true, "newest"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f ReplayFilter
			if !tt.fill(&f) {
				t.Fatal("a fresh counter was rejected during the fill")
			}
			runReplaySteps(t, &f, tt.after)
		})
	}
}

// fillRange offers from..to inclusive, ascending or descending.
func fillRange(from, to uint64) func(*ReplayFilter) bool {
	return func(f *ReplayFilter) bool {
		step := uint64(1)
		if to < from {
			step = ^uint64(0) // -1
		}
		for c := from; ; c += step {
			if !f.ValidateCounter(c, RejectAfterMessages) {
				return false
			}
			if c == to {
				return true
			}
		}
	}
}

// TestReplayReset dirties every block of the ring, resets, and checks that
// no stale bit survives anywhere the window reaches.
func TestReplayReset(t *testing.T) {
	var f ReplayFilter
	for c := uint64(0); c < 3*replayRingBlocks*replayBlockBits; c++ {
		f.ValidateCounter(c, RejectAfterMessages)
	}
	f.Reset()
	if !fillRange(0, 2*ReplayWindowSize)(&f) {
		t.Fatal("a counter was rejected after Reset: stale bits survived")
	}
}

// TestReplayJumpFarAhead checks that a jump past the whole window clears
// every block: all counters of the new window are accepted although their
// bit positions were set before the jump.
func TestReplayJumpFarAhead(t *testing.T) {
	// Each jump is more than a window, so top-ReplayWindowSize is still
	// newer than every counter seen before it.
	for _, jump := range []uint64{ReplayWindowSize + 1, replayRingBlocks * replayBlockBits, 1 << 40} {
		var f ReplayFilter
		fillRange(0, ReplayWindowSize)(&f)
		top := ReplayWindowSize + jump
		if !f.ValidateCounter(top, RejectAfterMessages) {
			t.Fatalf("jump %d: newest rejected", jump)
		}
		if !fillRange(top-1, top-ReplayWindowSize)(&f) {
			t.Fatalf("jump %d: stale bit after jump", jump)
		}
	}
}

func TestReplayNoAllocs(t *testing.T) {
	var f ReplayFilter
	c := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		f.ValidateCounter(c, RejectAfterMessages)
		c++
	})
	if allocs != 0 {
		t.Fatalf("ValidateCounter allocates %v times", allocs)
	}
}

func BenchmarkReplayValidateCounter(b *testing.B) {
	b.Run("in-order", func(b *testing.B) {
		var f ReplayFilter
		b.ReportAllocs()
		for i := range b.N {
			f.ValidateCounter(uint64(i), RejectAfterMessages)
		}
	})
	b.Run("reordered", func(b *testing.B) {
		// Pairs swapped, as a two-worker decrypt pool without reordering
		// would deliver them: every other counter goes backwards.
		var f ReplayFilter
		b.ReportAllocs()
		for i := range b.N {
			f.ValidateCounter(uint64(i^1), RejectAfterMessages)
		}
	})
}
