package dns

import (
	"os"
	"testing"
)

func TestProcStart(t *testing.T) {
	a, err := procStart(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("own start time: %d, %v", a, err)
	}
	if b, _ := procStart(os.Getpid()); b != a {
		t.Errorf("start time changed: %d, then %d", a, b)
	}
	if _, err := procStart(deadPID(t)); err == nil {
		t.Errorf("a dead process has a start time")
	}
	// A command name with spaces and parentheses.
	const stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100"
	if got, err := statStart(stat); err != nil || got != 98765 {
		t.Errorf("statStart: %d, %v; want 98765", got, err)
	}
	for _, bad := range []string{"", "1234 (x", "1234 (x) S 1 2"} {
		if _, err := statStart(bad); err == nil {
			t.Errorf("statStart(%q) accepted", bad)
		}
	}
}

func FuzzStatStart(f *testing.F) {
	f.Add("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5 0 0")
	f.Fuzz(func(t *testing.T, s string) { statStart(s) })
}
