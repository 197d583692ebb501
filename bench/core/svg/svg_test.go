package svg

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"pipeguard/bench/core/svg/svgtest"
)

func TestSVGEscapes(t *testing.T) {
	var b bytes.Buffer
	c := Chart{Title: `a <b> & "c"`, Panels: []Panel{{Title: "p&q", Series: []Series{{Name: "x<y", Color: "#000", Width: 1,
		Points: []Point{{1, 0.5}, {2, 1}}}, {Name: "lone", Color: "#000", Width: 1, Marker: "circle", Points: []Point{{1, 2}}}}}}}
	if err := Write(&b, c); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, b.Bytes())
	if !slices.Contains(d.Texts, `a <b> & "c"`) || !slices.Contains(d.Texts, "p&q") || d.Series["x<y"] != "" {
		t.Errorf("escaping: texts %q series %v", d.Texts, d.Series)
	}
	if _, ok := d.Series["lone"]; ok {
		t.Error("a single point drew a line")
	}
}

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct{ v, top, step float64 }{
		{0, 1, 0.2},
		{4.94, 6, 1},
		{33.38, 40, 5},
		{0.8, 1, 0.2},
		{0.05, 0.06, 0.01},
		{120, 140, 20},
	} {
		top, step := NiceScale(tc.v)
		if math.Abs(top-tc.top) > 1e-9 || math.Abs(step-tc.step) > 1e-9 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tc.v, top, step, tc.top, tc.step)
		}
	}
	if got := fmtTick(2, 1); got != "2" {
		t.Errorf("fmtTick(2, 1) = %q", got)
	}
	if got := fmtTick(0.4, 0.2); got != "0.4" {
		t.Errorf("fmtTick(0.4, 0.2) = %q", got)
	}
	if got := fmtTick(0.15, 0.05); got != "0.15" {
		t.Errorf("fmtTick(0.15, 0.05) = %q", got)
	}
}

// TestLogAxes: a logarithmic axis runs over whole decades with a tick
// labelled at each power of ten; a point at 0 is left out of its line.
func TestLogAxes(t *testing.T) {
	var b bytes.Buffer
	c := Chart{Title: "log", Panels: []Panel{{Title: "p", LogX: true, LogY: true, Series: []Series{
		{Name: "a", Color: "#000", Width: 1, Marker: "circle", Points: []Point{{1, 0.02}, {1000, 3}, {100_000, 250}, {0, 1}}},
	}}, {Title: "q", LogX: true, Series: []Series{{Name: "b", Color: "#000", Width: 1, Points: []Point{{10, 0}, {1_000_000, 40}}}}}}}
	if err := Write(&b, c); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, b.Bytes())
	for _, want := range []string{"1", "10", "1k", "100k", "1M", "0.01", "40"} {
		if !slices.Contains(d.Texts, want) {
			t.Errorf("no tick %q in %q", want, d.Texts)
		}
	}
	if _, ok := d.Series["a"]; !ok {
		t.Error("series a not drawn")
	}
	if n := bytes.Count(b.Bytes(), []byte("<circle")); n != 3+1 { // three points kept, and the legend's
		t.Errorf("%d markers, want 4 (the point at x=0 left out)", n)
	}
	for _, tc := range []struct {
		v    float64
		want string
	}{{0.1, "0.1"}, {1, "1"}, {100, "100"}, {1e4, "10k"}, {1e7, "10M"}} {
		if got := fmtDecade(tc.v); got != tc.want {
			t.Errorf("fmtDecade(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
