package soak

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv/nsenvtest"
	"pipeguard/bench/core/svg"
)

// TestSoakQuick runs `bench --mode soak` for 15 s end to end: real
// namespaces, two PipeGuard clients, iperf3 both ways, ping, two rounds
// of SIGHUP reloads and wg set changes at each end (a peer added, then
// removed; a keepalive and a prefix added, then removed). It checks the
// series and the line, and asserts the soak's bounds, which are
// behaviour, not speed: the resident set may grow by 10% plus 2 MiB, the
// goroutines by 5, and no packet may be lost to a panic. About 30 s.
func TestSoakQuick(t *testing.T) {
	nsenvtest.Require(t, soakUsable())
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("runs tunnels for half a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	begin := time.Now()
	r, err := Measure(ctx, Config{Duration: 15 * time.Second, Every: 8 * time.Second, Out: core.Out{W: nsenvtest.Log{T: t}}})
	t.Logf("soak run: %v", time.Since(begin).Round(100*time.Millisecond))
	nsenvtest.AssertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	r.WriteTable(&table)
	t.Logf("\n%s", table.String())
	checkSoakTable(t, table.String(), r)
	var chart bytes.Buffer
	if err := svg.Write(&chart, r.Chart(core.DescribeMachine(nil))); err != nil {
		t.Fatal(err)
	}
	checkSoakSVG(t, chart.Bytes(), r)

	// The series: a sample at 0, 10 and 15 s, each of both ends.
	if len(r.Samples) != 3 || len(r.Ends) != 2 {
		t.Fatalf("%d samples of %d ends, want 3 of 2", len(r.Samples), len(r.Ends))
	}
	for i, s := range r.Samples {
		want := []float64{0, 10, 15}[i]
		if s.AtSeconds < want || s.AtSeconds > want+2 || len(s.Ends) != 2 {
			t.Errorf("sample %d at %.2f s with %d ends, want at %v s with 2", i, s.AtSeconds, len(s.Ends), want)
		}
		for j, e := range s.Ends {
			if e.RSSBytes < 1<<20 || e.Goroutines < 5 {
				t.Errorf("sample %d, end %s: RSS %d bytes, %d goroutines: not a running client", i, r.Ends[j], e.RSSBytes, e.Goroutines)
			}
			if i > 0 && e.RxBytes+e.TxBytes <= s0(r, i-1, j) {
				t.Errorf("sample %d, end %s: no traffic since the sample before", i, r.Ends[j])
			}
		}
	}
	// Two rounds of changes, at 4 and 12 s: each end reloaded and set twice.
	if len(r.Events) != 8 || r.Summary.Reloads != 4 || r.Summary.WGSets != 4 {
		t.Errorf("%d changes (%d reloads, %d wg sets), want 8 (4, 4): %+v", len(r.Events), r.Summary.Reloads, r.Summary.WGSets, r.Events)
	}
	for _, e := range r.Events {
		if !e.Applied {
			t.Errorf("change not applied: %+v", e)
		}
	}
	if r.TCP.BytesAToB == 0 || r.TCP.BytesBToA == 0 || r.Ping.Received == 0 {
		t.Errorf("traffic: %+v, ping %+v", r.TCP, r.Ping)
	}

	// The line, in its form, with the figures of the series.
	m := soakLine.FindStringSubmatch(r.Line)
	if m == nil {
		t.Fatalf("line not in the soak's form: %q", r.Line)
	}
	if m[1] != "15s" {
		t.Errorf("line says %s of traffic, want 15s", m[1])
	}

	// The bounds, asserted here on the series, for each end and for both.
	first, last := r.Samples[0].Ends, r.Samples[len(r.Samples)-1].Ends
	var f0, l0 EndStat
	for j := range first {
		checkSoakBounds(t, r.Ends[j], first[j], last[j])
		f0.RSSBytes, l0.RSSBytes = f0.RSSBytes+first[j].RSSBytes, l0.RSSBytes+last[j].RSSBytes
		f0.Goroutines, l0.Goroutines = f0.Goroutines+first[j].Goroutines, l0.Goroutines+last[j].Goroutines
		l0.PanicDrops += last[j].PanicDrops
	}
	checkSoakBounds(t, "both", f0, l0)
	if !r.Summary.Held || len(r.Failures) > 0 {
		t.Errorf("held %v, failures %q", r.Summary.Held, r.Failures)
	}
	for _, w := range r.Warnings {
		t.Logf("warning: %s", w)
	}
}

// s0 is end j's datagram bytes, sent and received, at sample i.
func s0(r *Report, i, j int) uint64 {
	return r.Samples[i].Ends[j].RxBytes + r.Samples[i].Ends[j].TxBytes
}

// checkSoakBounds asserts the soak's bounds between an end's first and
// last samples.
func checkSoakBounds(t *testing.T, end string, first, last EndStat) {
	t.Helper()
	if float64(last.RSSBytes) > 1.1*float64(first.RSSBytes)+2<<20 {
		t.Errorf("%s: RSS %.1f MiB → %.1f MiB, over first × 1.1 + 2 MiB", end, mib(first.RSSBytes), mib(last.RSSBytes))
	}
	if last.Goroutines > first.Goroutines+5 {
		t.Errorf("%s: goroutines %d → %d, over first + 5", end, first.Goroutines, last.Goroutines)
	}
	if last.PanicDrops != 0 {
		t.Errorf("%s: %d panic drops", end, last.PanicDrops)
	}
}
