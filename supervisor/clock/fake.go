package clock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Fake is a [Clock] whose time moves only when a test calls [Fake.Advance].
// Timers fire inside Advance, in deadline order, by a non-blocking send on a
// channel of capacity one, as real timers do; the goroutines that wait on
// them run afterwards and then see Now as the advanced time.
//
// Tests synchronise with the code under test through the pending timers: a
// goroutine about to wait for a backoff has a pending timer, so
// [Fake.WaitTimers] tells the test when it may advance.
//
// The zero value is ready to use, with Now at the zero time.Time; [NewFake]
// starts at a given time. A Fake is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex // guards now, pending, changed
	now     time.Time
	pending []*fakeTimer  // armed timers, in no particular order
	changed chan struct{} // closed and replaced when pending changes; nil until first asked for
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock whose Now is start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the fake time reaches Now()+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armLocked(t, d)
	return t
}

// Advance moves the fake time forward by d and fires every timer whose
// deadline has been reached, earliest first. It panics if d is negative: time
// does not go back.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Fake.Advance with a negative duration")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	slices.SortFunc(f.pending, func(a, b *fakeTimer) int { return a.when.Compare(b.when) })
	n := 0
	for _, t := range f.pending {
		if t.when.After(f.now) {
			break
		}
		t.fireLocked()
		n++
	}
	if n > 0 {
		f.pending = slices.Delete(f.pending, 0, n)
		f.notifyLocked()
	}
}

// Pending returns the number of timers that are armed and have not fired.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// WaitTimers blocks until at least n timers are pending or ctx is done, and
// returns ctx.Err() in the latter case.
func (f *Fake) WaitTimers(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		if len(f.pending) >= n {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// armLocked schedules t to fire d after now; d <= 0 fires it at once.
func (f *Fake) armLocked(t *fakeTimer, d time.Duration) {
	t.when = f.now.Add(d)
	if d <= 0 {
		t.fireLocked()
		return
	}
	t.armed = true
	f.pending = append(f.pending, t)
	f.notifyLocked()
}

// disarmLocked removes t from the pending set and drains its channel, so that
// no stale value is received after Stop or Reset (Go 1.23 timer semantics).
func (f *Fake) disarmLocked(t *fakeTimer) bool {
	was := t.armed
	if was {
		t.armed = false
		f.pending = slices.DeleteFunc(f.pending, func(p *fakeTimer) bool { return p == t })
		f.notifyLocked()
	}
	select {
	case <-t.c:
	default:
	}
	return was
}

func (f *Fake) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// fakeTimer's fields other than f and c are guarded by f.mu.
type fakeTimer struct {
	f     *Fake
	c     chan time.Time
	when  time.Time
	armed bool
}

func (t *fakeTimer) fireLocked() {
	t.armed = false
	select {
	case t.c <- t.when:
	default: // an unreceived earlier value stays, as with a real timer
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.disarmLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.disarmLocked(t)
	t.f.armLocked(t, d)
	return was
}
