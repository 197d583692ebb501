package mem

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

func TestSVGRecorded(t *testing.T) {
	r := readRecorded(t, "testdata/report-quick.json")
	var b bytes.Buffer
	if err := svg.Write(&b, r.Mem.Chart(r.Machine, r.Settings)); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, b.Bytes())
	if d.Elements[0] != "svg" {
		t.Errorf("root element %q", d.Elements[0])
	}
	// Two sizes in the quick sweep: two panels, each with a line per
	// engine and direction and the dashed AEAD limit.
	want := []string{"sequential inbound", "pipeline inbound", "sequential outbound", "pipeline outbound",
		"sequential both", "pipeline both", "ChaCha20-Poly1305 limit"}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range d.Series {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("series %v, want %v", names, want)
	}
	for name, dash := range d.Series {
		if (dash != "") != (name == "ChaCha20-Poly1305 limit") {
			t.Errorf("series %q dashed %q", name, dash)
		}
	}
	if n := strings.Count(b.String(), `<polyline class="series"`); n != 2*len(want) {
		t.Errorf("%d lines, want %d in two panels", n, 2*len(want))
	}
	for _, text := range append(want, "64-byte packets", "1280-byte packets", "GOMAXPROCS (cores)", "inner Gbit/s",
		"PipeGuard in memory: throughput against cores") {
		if !slices.Contains(d.Texts, text) {
			t.Errorf("no text %q (legend, panel titles, axes, title)", text)
		}
	}
	// Ticks: the x axis has 1 and 2 (cores), the y axis starts at 0.
	for _, tick := range []string{"1", "2", "0"} {
		if !slices.Contains(d.Texts, tick) {
			t.Errorf("no tick %q", tick)
		}
	}
}
