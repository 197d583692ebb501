package bench

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg/svgtest"
	"pipeguard/bench/loadgen"
	"pipeguard/bench/netns"
)

// Recorded reports of the modes, in their packages' testdata: real runs
// of the harness, as its JSON files hold them.
const (
	recordedMem   = "mem/testdata/report-quick.json"
	recordedNetns = "netns/testdata/report-netns-quick.json"
)

// TestSVGEmptyReport draws a report with no figures: still a well-formed
// chart.
func TestSVGEmptyReport(t *testing.T) {
	var b bytes.Buffer
	if err := (&Report{}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, b.Bytes())
	if !slices.Contains(d.Texts, "no figures in this report") {
		t.Errorf("texts %q", d.Texts)
	}
}

// TestSVGTitles: the chart's title names the modes whose rows it holds.
func TestSVGTitles(t *testing.T) {
	for _, tc := range []struct {
		r    Report
		want string
	}{
		{Report{Netns: &netns.Report{}}, "PipeGuard against wireguard-go: TCP in network namespaces"},
		{Report{Loadgen: &loadgen.Report{}}, "PipeGuard against wireguard-go: one end under load"},
		{Report{Netns: &netns.Report{}, Loadgen: &loadgen.Report{}},
			"PipeGuard: TCP in network namespaces against wireguard-go; one end under load against wireguard-go"},
	} {
		var b bytes.Buffer
		if err := tc.r.WriteSVG(&b); err != nil {
			t.Fatal(err)
		}
		if d := svgtest.Parse(t, b.Bytes()); !slices.Contains(d.Texts, tc.want) {
			t.Errorf("title %q not in %q", tc.want, d.Texts)
		}
	}
}

// TestTableHeader: the table starts with a line on the machine, and a
// report of no mode has nothing else.
func TestTableHeader(t *testing.T) {
	r := Report{Machine: core.Machine{CPUModel: "Test CPU", Cores: 2, GoVersion: "go1.26", Kernel: "Linux 6.1",
		Date: "2026-11-28T00:00:00Z", LoadAverage: "0.50 0.40 0.30"}}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if want := "PipeGuard bench: Test CPU, 2 cores, go1.26, Linux 6.1, 2026-11-28T00:00:00Z, load average 0.50 0.40 0.30\n"; b.String() != want {
		t.Errorf("table %q, want %q", b.String(), want)
	}
}

// TestNetnsWithMemChart puts the recorded netns figures under the
// recorded in-memory ones: two rows of panels, every line once in the
// legend.
func TestNetnsWithMemChart(t *testing.T) {
	r := readReportFile(t, recordedNetns)
	r.Mem = readReportFile(t, recordedMem).Mem
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
