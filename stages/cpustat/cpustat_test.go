package cpustat

import (
	"testing"
	"time"
)

func TestShare(t *testing.T) {
	a := Pressure{Some: 10 * time.Second}
	b := Pressure{Some: 10*time.Second + 150*time.Millisecond}
	if got := Share(a, b, 200*time.Millisecond); got != 0.75 {
		t.Errorf("Share = %v, want 0.75", got)
	}
	if got := Share(a, b, 100*time.Millisecond); got != 1 {
		t.Errorf("Share beyond the wall time = %v, want 1", got)
	}
	if got := Share(b, a, time.Second); got != 0 {
		t.Errorf("Share of readings out of order = %v, want 0", got)
	}
	if got := Share(a, b, 0); got != 0 {
		t.Errorf("Share over no time = %v, want 0", got)
	}
}
