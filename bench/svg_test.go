package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"strings"
	"testing"
)

// svgDoc is what the test reads back from the chart: every element's name,
// the series lines, and every text.
type svgDoc struct {
	elements []string
	series   map[string]string // data-series -> stroke-dasharray ("" when solid)
	texts    []string
}

// parseSVG decodes the chart strictly as XML and collects what the tests
// look at.
func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	d := svgDoc{series: map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	var inText bool
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			d.elements = append(d.elements, el.Name.Local)
			inText = el.Name.Local == "text"
			if el.Name.Local == "svg" && el.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("svg namespace %q", el.Name.Space)
			}
			if el.Name.Local == "polyline" {
				var name, dash string
				for _, a := range el.Attr {
					switch a.Name.Local {
					case "data-series":
						name = a.Value
					case "stroke-dasharray":
						dash = a.Value
					}
				}
				if class(el) == "series" {
					d.series[name] = dash
				}
			}
		case xml.CharData:
			if inText {
				d.texts = append(d.texts, strings.TrimSpace(string(el)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return d
}

func class(el xml.StartElement) string {
	for _, a := range el.Attr {
		if a.Name.Local == "class" {
			return a.Value
		}
	}
	return ""
}

func TestSVGRecorded(t *testing.T) {
	r := readRecorded(t, "testdata/report-quick.json")
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b.Bytes())
	if d.elements[0] != "svg" {
		t.Errorf("root element %q", d.elements[0])
	}
	// Two sizes in the quick sweep: two panels, each with a line per
	// engine and direction and the dashed AEAD limit.
	want := []string{"sequential inbound", "pipeline inbound", "sequential outbound", "pipeline outbound",
		"sequential both", "pipeline both", "ChaCha20-Poly1305 limit"}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range d.series {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("series %v, want %v", names, want)
	}
	for name, dash := range d.series {
		if (dash != "") != (name == "ChaCha20-Poly1305 limit") {
			t.Errorf("series %q dashed %q", name, dash)
		}
	}
	if n := strings.Count(b.String(), `<polyline class="series"`); n != 2*len(want) {
		t.Errorf("%d lines, want %d in two panels", n, 2*len(want))
	}
	for _, text := range append(want, "64-byte packets", "1280-byte packets", "GOMAXPROCS (cores)", "inner Gbit/s",
		"PipeGuard in memory: throughput against cores") {
		if !slices.Contains(d.texts, text) {
			t.Errorf("no text %q (legend, panel titles, axes, title)", text)
		}
	}
	// Ticks: the x axis has 1 and 2 (cores), the y axis starts at 0.
	for _, tick := range []string{"1", "2", "0"} {
		if !slices.Contains(d.texts, tick) {
			t.Errorf("no tick %q", tick)
		}
	}
}

func TestSVGEscapesAndEmpty(t *testing.T) {
	var b bytes.Buffer
	c := chart{title: `a <b> & "c"`, panels: []panel{{title: "p&q", series: []series{{name: "x<y", color: "#000", width: 1,
		points: []point{{1, 0.5}, {2, 1}}}, {name: "lone", color: "#000", width: 1, marker: "circle", points: []point{{1, 2}}}}}}}
	if err := writeChart(&b, c); err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b.Bytes())
	if !slices.Contains(d.texts, `a <b> & "c"`) || !slices.Contains(d.texts, "p&q") || d.series["x<y"] != "" {
		t.Errorf("escaping: texts %q series %v", d.texts, d.series)
	}
	if _, ok := d.series["lone"]; ok {
		t.Error("a single point drew a line")
	}
	b.Reset()
	if err := (&Report{}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, b.Bytes())
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
		top, step := niceScale(tc.v)
		if !near(top, tc.top) || !near(step, tc.step) {
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
