package bench

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"pipeguard/bench/core/svg/svgtest"
)

// TestNetnsWithMemChart puts the recorded netns figures under the
// recorded in-memory ones: two rows of panels, every line once in the
// legend.
func TestNetnsWithMemChart(t *testing.T) {
	r := readReportFile(t, "netns/testdata/report-netns-quick.json")
	r.Mem = readRecorded(t, "testdata/report-quick.json").Mem
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, b.Bytes())
	if n := strings.Count(b.String(), `<polyline class="legend"`); n != 7+3 {
		t.Errorf("%d legend entries, want 10", n)
	}
	for _, text := range []string{"64-byte packets", "1280-byte packets", "TCP outbound, netns", "GOMAXPROCS (cores)", "iperf3 TCP streams"} {
		if !slices.Contains(d.Texts, text) {
			t.Errorf("chart lacks %q", text)
		}
	}
}
