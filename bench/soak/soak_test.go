package soak

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

func TestPlanSoak(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		d, every         time.Duration
		samples, changes []time.Duration
	}{
		{60 * s, time.Minute, []time.Duration{0, 10 * s, 20 * s, 30 * s, 40 * s, 50 * s, 60 * s}, []time.Duration{30 * s}},
		{25 * s, 10 * s, []time.Duration{0, 10 * s, 20 * s, 25 * s}, []time.Duration{5 * s, 15 * s}},
		{15 * s, 8 * s, []time.Duration{0, 10 * s, 15 * s}, []time.Duration{4 * s, 12 * s}},
		{20 * s, time.Minute, []time.Duration{0, 10 * s, 20 * s}, []time.Duration{10 * s}}, // shorter than every/2: once, halfway
		{5 * s, time.Minute, []time.Duration{0, 5 * s}, []time.Duration{2500 * time.Millisecond}},
	} {
		p := planSoak(tc.d, tc.every)
		if !slices.Equal(p.samples, tc.samples) || !slices.Equal(p.changes, tc.changes) {
			t.Errorf("planSoak(%v, %v) = %v, %v; want %v, %v", tc.d, tc.every, p.samples, p.changes, tc.samples, tc.changes)
		}
	}
	// Ten minutes: a sample every 10 s and ten rounds of changes, the last
	// half a minute before the last sample.
	p := planSoak(10*time.Minute, time.Minute)
	if len(p.samples) != 61 || len(p.changes) != 10 || p.changes[9] != 570*s || p.samples[60] != 600*s {
		t.Errorf("10 min plan: %d samples, changes %v", len(p.samples), p.changes)
	}
}

func TestFmtSoakDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second: "60s", 90 * time.Second: "90s", 10 * time.Minute: "10m", 150 * time.Second: "2m30s",
		time.Hour: "1h", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "2s",
	} {
		if got := fmtSoakDuration(d); got != want {
			t.Errorf("fmtSoakDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// metricsText is a scrape in the format cmd/headless-client/metrics
// writes (TestSoakQuick reads the real one).
const metricsText = `# HELP pipeguard_stage_drops_total Packets the stage dropped, by reason.
# TYPE pipeguard_stage_drops_total counter
pipeguard_stage_drops_total{stage="udprecv",reason="malformed"} 7
pipeguard_stage_drops_total{stage="udprecv",reason="panic"} 2
pipeguard_stage_drops_total{stage="decrypt",reason="panic"} 1
# TYPE pipeguard_stage_restarts_total counter
pipeguard_stage_restarts_total{stage="udprecv"} 1
pipeguard_stage_restarts_total{stage="decrypt"} 2
pipeguard_peer_receive_bytes_total{public_key="a"} 100
pipeguard_peer_receive_bytes_total{public_key="b"} 20
pipeguard_peer_transmit_bytes_total{public_key="a"} 300
# TYPE go_goroutines gauge
go_goroutines 23
go_memstats_heap_alloc_bytes 30000000
go_memstats_next_gc_bytes 60000000
go_gc_cycles_total 4
`

func TestParseSoakMetrics(t *testing.T) {
	m, err := parseSoakMetrics(metricsText)
	if err != nil {
		t.Fatal(err)
	}
	want := soakMetrics{goroutines: 23, panicDrops: 3, restarts: 3, rxBytes: 120, txBytes: 300,
		heap: 30e6, heapGoal: 60e6, gcCycles: 4, sawGoroutines: true, sawDrops: true}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	for name, text := range map[string]string{
		"no goroutines": strings.ReplaceAll(metricsText, "go_goroutines 23\n", ""),
		"no drops":      regexp.MustCompile(`(?m)^pipeguard_stage_drops_total.*\n`).ReplaceAllString(metricsText, ""),
		"bad value":     strings.Replace(metricsText, "} 2\n", "} two\n", 1),
		"no value":      metricsText + "go_goroutines\n",
	} {
		if _, err := parseSoakMetrics(text); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseIperf3Bidir(t *testing.T) {
	b, err := os.ReadFile("testdata/iperf3-bidir.json")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := parseIperf3Bidir(b)
	if err != nil {
		t.Fatal(err)
	}
	if tcp.BytesAToB != 12582912 || tcp.BytesBToA != 12582912 || !(tcp.Seconds > 0.9 && tcp.Seconds < 1.2) {
		t.Errorf("got %+v", tcp)
	}
	for _, f := range []string{"iperf3-refused.json", "iperf3-1stream.json"} { // failed; not --bidir
		b, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseIperf3Bidir(b); err == nil {
			t.Errorf("%s: no error", f)
		}
	}
}

// soakLine is the form of the soak's line, and the figures in it.
var soakLine = regexp.MustCompile(`^soak: (\d+(?:\.\d+)?[smh][0-9smh]*) of traffic; RSS first (\d+\.\d) MiB last (\d+\.\d) MiB; goroutines first (\d+) last (\d+); panic drops (\d+); \S.*$`)

// fakeSoak is a soak report of two ends: RSS 30 MiB each, 20 goroutines
// each, the same at 0 and 30 s; change makes the last sample differ.
func fakeSoak(change func(last []EndStat)) *Report {
	first := []EndStat{{RSSBytes: 30 << 20, Goroutines: 20, RxBytes: 0}, {RSSBytes: 30 << 20, Goroutines: 20}}
	last := []EndStat{{RSSBytes: 31 << 20, Goroutines: 20, RxBytes: 5e9, TxBytes: 5e9}, {RSSBytes: 30 << 20, Goroutines: 21}}
	if change != nil {
		change(last)
	}
	r := &Report{DurationSeconds: 60, WarmupSeconds: 5, SampleEverySeconds: 10, ChangeEverySeconds: 60, MTU: 1280,
		Args: []string{"standalone"}, Ends: []string{"A", "B"},
		Samples: []Sample{{AtSeconds: 0, Ends: first}, {AtSeconds: 30, Ends: first}, {AtSeconds: 60, Ends: last}},
		Events: []Event{{AtSeconds: 30, End: "A", Kind: soakReload, What: "peer x added", Applied: true},
			{AtSeconds: 30, End: "A", Kind: soakWGSet, What: "persistent-keepalive 25", Applied: true}},
		TCP:  TCP{Seconds: 66, BytesAToB: 4e9, BytesBToA: 3e9},
		Ping: core.RTT{Sent: 330, Received: 329},
	}
	r.summarizeSoak()
	return r
}

func TestSoakSummary(t *testing.T) {
	r := fakeSoak(nil)
	m := soakLine.FindStringSubmatch(r.Line)
	if m == nil {
		t.Fatalf("line not in the soak's form: %q", r.Line)
	}
	if want := []string{"60s", "60.0", "61.0", "40", "41", "0"}; !slices.Equal(m[1:], want) {
		t.Errorf("line figures %q, want %q", m[1:], want)
	}
	for _, part := range []string{"TCP 7.00 GB moved (A→B 4.00, B→A 3.00)", "ping 329 of 330 answered (0.3% lost)",
		"SIGHUP reloads 1 of 1", "wg set changes 1 of 1", "stage restarts 0", "bounds held"} {
		if !strings.Contains(r.Line, part) {
			t.Errorf("line lacks %q: %s", part, r.Line)
		}
	}
	if !r.Summary.Held || len(r.Failures) > 0 {
		t.Errorf("held %v, failures %q", r.Summary.Held, r.Failures)
	}
	// Each bound, broken alone, fails the soak and says so.
	for name, tc := range map[string]struct {
		change func([]EndStat)
		want   string
	}{
		"RSS of one end": {func(l []EndStat) { l[1].RSSBytes = 35<<20 + 1<<19 }, "B: RSS grew from 30.0 MiB to 35.5 MiB, over 35.0 MiB"},
		"RSS together":   {func(l []EndStat) { l[0].RSSBytes, l[1].RSSBytes = 34<<20+1<<19, 34<<20+1<<19 }, "both: RSS grew from 60.0 MiB to 69.0 MiB, over 68.0 MiB"},
		"goroutines":     {func(l []EndStat) { l[0].Goroutines = 26 }, "A: goroutines rose from 20 to 26"},
		"panic drops":    {func(l []EndStat) { l[1].PanicDrops = 1 }, "B: 1 packets lost to stage panics"},
	} {
		r := fakeSoak(tc.change)
		if r.Summary.Held || !slices.ContainsFunc(r.Failures, func(f string) bool { return strings.Contains(f, tc.want) }) {
			t.Errorf("%s: held %v, failures %q, want one with %q", name, r.Summary.Held, r.Failures, tc.want)
		}
		if !strings.HasSuffix(r.Line, "FAILED ("+strconv.Itoa(len(r.Failures))+")") {
			t.Errorf("%s: line %q", name, r.Line)
		}
	}
	// Exactly at the bounds still holds: 30 MiB × 1.1 + 2 MiB, 20 + 5.
	if r := fakeSoak(func(l []EndStat) { l[1].RSSBytes, l[1].Goroutines = 35<<20, 25; l[0].RSSBytes = 30 << 20 }); !r.Summary.Held {
		t.Errorf("at the bounds: %q", r.Failures)
	}
	r = fakeSoak(nil)
	r.Events[1].Applied, r.Events[1].Error = false, "not shown"
	r.Failures = nil
	r.summarizeSoak()
	if r.Summary.Held || !strings.Contains(r.Line, "wg set changes 0 of 1") {
		t.Errorf("a change that did not apply: held %v, line %q", r.Summary.Held, r.Line)
	}
}

// TestSoakReportOutputs checks the table, the JSON round trip and the
// chart of a soak report.
func TestSoakReportOutputs(t *testing.T) {
	r := fakeSoak(nil)
	var b strings.Builder
	r.WriteTable(&b)
	checkSoakTable(t, b.String(), r)
	j1, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back *Report
	dec := json.NewDecoder(bytes.NewReader(j1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if j2, _ := json.Marshal(back); !bytes.Equal(j1, j2) {
		t.Errorf("JSON round trip differs:\n%s\n%s", j1, j2)
	}
	var chart bytes.Buffer
	if err := svg.Write(&chart, r.Chart(core.Machine{CPUModel: "test CPU", Cores: 2})); err != nil {
		t.Fatal(err)
	}
	checkSoakSVG(t, chart.Bytes(), r)
}

// checkSoakTable checks that the table shows every sample, every change
// and ends with the line.
func checkSoakTable(t *testing.T, table string, r *Report) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if last := lines[len(lines)-1]; last != r.Line {
		t.Errorf("table's last line %q, want the soak line %q", last, r.Line)
	}
	for i, row := range soakRows(r) {
		if !strings.Contains(squeeze(table), strings.Join(row, " ")) {
			t.Errorf("table lacks sample %d, %q:\n%s", i, row, table)
		}
	}
	for _, e := range r.Events {
		if !strings.Contains(table, e.Kind+": "+e.What) {
			t.Errorf("table lacks the change %q", e.What)
		}
	}
}

// checkSoakSVG checks that the chart is well-formed and has a line per
// end in each panel, and the throughput.
func checkSoakSVG(t *testing.T, svg []byte, r *Report) {
	t.Helper()
	d := svgtest.Parse(t, svg)
	for _, e := range r.Ends {
		if _, ok := d.Series["end "+e]; !ok {
			t.Errorf("chart has no line for end %s: %v", e, d.Series)
		}
	}
	if _, ok := d.Series["end A datagrams"]; !ok {
		t.Errorf("chart has no throughput line: %v", d.Series)
	}
	for _, title := range []string{"resident set (VmRSS) and Go heap", "goroutines (go_goroutines)"} {
		if !slices.Contains(d.Texts, title) {
			t.Errorf("chart has no panel %q", title)
		}
	}
}

func TestSoakConfig(t *testing.T) {
	for _, tc := range []struct {
		in              Config
		duration, every time.Duration
	}{
		{Config{}, 10 * time.Minute, time.Minute},
		{Config{Quick: true}, 20 * time.Second, time.Minute},
		{Config{Duration: time.Minute, Every: 15 * time.Second}, time.Minute, 15 * time.Second},
	} {
		c := tc.in.WithDefaults()
		if c.Duration != tc.duration || c.Every != tc.every {
			t.Errorf("%+v: duration %v, every %v; want %v, %v", tc.in, c.Duration, c.Every, tc.duration, tc.every)
		}
	}
}

// squeeze collapses each line's runs of white space into one space, so
// that a table's row can be found by its cells.
func squeeze(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(strings.Join(strings.Fields(line), " ") + "\n")
	}
	return b.String()
}
