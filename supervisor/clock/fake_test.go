package clock_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/supervisor/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fired reports whether t's channel holds a value, and which.
func fired(t clock.Timer) (time.Time, bool) {
	select {
	case v := <-t.C():
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeAdvanceFiresDueTimers(t *testing.T) {
	f := clock.NewFake(t0)
	a := f.NewTimer(3 * time.Second)
	b := f.NewTimer(1 * time.Second)
	c := f.NewTimer(10 * time.Second)
	if got := f.Pending(); got != 3 {
		t.Fatalf("Pending = %d, want 3", got)
	}

	f.Advance(999 * time.Millisecond)
	for _, tm := range []clock.Timer{a, b, c} {
		if _, ok := fired(tm); ok {
			t.Fatal("a timer fired before its deadline")
		}
	}
	f.Advance(2001 * time.Millisecond) // now t0+3s: a and b are due
	if v, ok := fired(b); !ok || !v.Equal(t0.Add(time.Second)) {
		t.Errorf("b: fired=%v value=%v, want its deadline", ok, v)
	}
	if v, ok := fired(a); !ok || !v.Equal(t0.Add(3*time.Second)) {
		t.Errorf("a: fired=%v value=%v, want its deadline", ok, v)
	}
	if _, ok := fired(c); ok {
		t.Error("c fired early")
	}
	if got := f.Pending(); got != 1 {
		t.Errorf("Pending = %d, want 1", got)
	}
	if got := f.Now(); !got.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("Now = %v, want t0+3s", got)
	}
}

func TestFakeStopAndReset(t *testing.T) {
	tests := []struct {
		name        string
		do          func(f *clock.Fake, tm clock.Timer) bool
		wantWas     bool
		wantPending int
		advance     time.Duration
		wantFire    bool
	}{
		{"stop pending", func(f *clock.Fake, tm clock.Timer) bool { return tm.Stop() }, true, 0, time.Hour, false},
		{"stop fired drains", func(f *clock.Fake, tm clock.Timer) bool {
			f.Advance(time.Second)
			return tm.Stop()
		}, false, 0, 0, false},
		{"reset pending later", func(f *clock.Fake, tm clock.Timer) bool { return tm.Reset(5 * time.Second) }, true, 1, 4 * time.Second, false},
		{"reset fired rearms", func(f *clock.Fake, tm clock.Timer) bool {
			f.Advance(time.Second)
			return tm.Reset(time.Second)
		}, false, 1, time.Second, true},
		{"reset to zero fires now", func(f *clock.Fake, tm clock.Timer) bool { return tm.Reset(0) }, true, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := clock.NewFake(t0)
			tm := f.NewTimer(time.Second)
			if was := tt.do(f, tm); was != tt.wantWas {
				t.Errorf("returned %v, want %v", was, tt.wantWas)
			}
			if got := f.Pending(); got != tt.wantPending {
				t.Errorf("Pending = %d, want %d", got, tt.wantPending)
			}
			f.Advance(tt.advance)
			if _, ok := fired(tm); ok != tt.wantFire {
				t.Errorf("fired = %v, want %v", ok, tt.wantFire)
			}
		})
	}
}

func TestFakeWaitTimers(t *testing.T) {
	f := clock.NewFake(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	got := make(chan time.Time)
	go func() {
		tm := f.NewTimer(time.Minute)
		got <- <-tm.C()
	}()
	if err := f.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	if v := <-got; !v.Equal(t0.Add(time.Minute)) {
		t.Errorf("received %v, want t0+1m", v)
	}

	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	if err := f.WaitTimers(short, 1); err == nil {
		t.Error("WaitTimers returned nil with no timer pending")
	}
}

func TestZeroFakeAndReal(t *testing.T) {
	var f clock.Fake
	if !f.Now().IsZero() {
		t.Error("zero Fake does not start at the zero time")
	}
	f.Advance(time.Second)
	if got := f.Now().Sub(time.Time{}); got != time.Second {
		t.Errorf("zero Fake advanced by %v, want 1s", got)
	}

	var r clock.Real
	tm := r.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(5 * time.Second):
		t.Fatal("real timer did not fire")
	}
	if tm.Stop() {
		t.Error("Stop of a fired real timer reported pending")
	}
	if d := time.Since(r.Now()); d < 0 || d > time.Second {
		t.Errorf("Real.Now off by %v", d)
	}
}

func TestFakeAdvanceNegativePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	clock.NewFake(t0).Advance(-1)
}
