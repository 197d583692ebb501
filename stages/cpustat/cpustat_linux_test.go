package cpustat

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		some time.Duration
		bad  bool
	}{
		{in: "some avg10=1.50 avg60=0.80 avg300=0.20 total=2764359824\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", some: 2764359824 * time.Microsecond},
		{in: "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=42\n", some: 42 * time.Microsecond},
		{in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=x\n", bad: true},
		// more microseconds than a time.Duration holds (292 years)
		{in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=9999999999999999999\n", bad: true},
		{in: "some avg10=0.00\n", bad: true},
		{in: "", bad: true},
	} {
		got, err := parse([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("parse(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.Some != tc.some {
			t.Errorf("parse(%q) = %+v, %v; want %v", tc.in, got, err, tc.some)
		}
	}
}

// TestReader reads the machine's pressure twice, and a hundred more times
// without allocating.
func TestReader(t *testing.T) {
	r, err := Open()
	if errors.Is(err, ErrUnsupported) {
		t.Skip("no PSI on this kernel")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	b, err := r.Read()
	if err != nil || b.Some < a.Some {
		t.Errorf("readings %+v then %+v, %v: want a total that never falls", a, b, err)
	}
	if n := testing.AllocsPerRun(100, func() { r.Read() }); n != 0 {
		t.Errorf("Read allocates %v times", n)
	}
}

// FuzzParse: any bytes give an error or a total that is not negative.
func FuzzParse(f *testing.F) {
	f.Add([]byte("some avg10=1.50 avg60=0.80 avg300=0.20 total=2764359824\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	f.Add([]byte("full avg10=0.00 avg60=0.00 avg300=0.00 total=7\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=42\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parse(b)
		if err == nil && p.Some < 0 {
			t.Errorf("parse(%q) = %v, want a total that is not negative", b, p.Some)
		}
	})
}
