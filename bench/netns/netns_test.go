package netns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

// Recorded netns reports: real runs of this harness on the development
// machine (root):
//
//	report-netns-quick.json:   go run ./cmd/bench --mode netns --quick --json …
//	report-netns-repeat3.json: go run ./cmd/bench --mode netns --repeat 3 --json …   (the run in RESULTS.md)
var recordedNetns = []string{"testdata/report-netns-quick.json", "testdata/report-netns-repeat3.json"}

// recordedReport is a report as cmd/bench writes it in netns mode.
type recordedReport struct {
	Machine  core.Machine  `json:"machine"`
	Settings core.Settings `json:"settings"`
	Netns    *Report       `json:"netns"`
}

// readRecorded reads the recorded report at path.
func readRecorded(t *testing.T, path string) recordedReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r recordedReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Netns == nil {
		t.Fatalf("%s: no netns figures", path)
	}
	return r
}

// TestNetnsRecorded recomputes the recorded reports' medians and ratios
// from their samples, and checks that the table and the chart show every
// tunnel's figures.
func TestNetnsRecorded(t *testing.T) {
	for _, path := range recordedNetns {
		r := readRecorded(t, path)
		checkNetnsReport(t, r.Netns, r.Settings.Repeat, r.Machine.Cores)
		for _, run := range r.Netns.Runs {
			for _, tc := range run.TCP {
				var gbps, cpu []float64
				for _, s := range tc.Samples {
					gbps = append(gbps, s.Gbps)
					cpu = append(cpu, 100*s.CPUSeconds/s.WallSeconds)
				}
				slices.Sort(gbps)
				slices.Sort(cpu)
				// Odd counts only in the recordings: the middle one.
				if !near(tc.Gbps, gbps[len(gbps)/2]) || !near(tc.CPUPercent, cpu[len(cpu)/2]) {
					t.Errorf("%s: %s %s %v ×%d: Gbps %v of %v, CPU %v of %v", path, run.Impl, run.Engine, tc.Direction, tc.Streams, tc.Gbps, gbps, tc.CPUPercent, cpu)
				}
			}
		}
		var b strings.Builder
		r.Netns.WriteTable(&b, r.Settings)
		table := squeeze(b.String())
		for _, run := range r.Netns.Runs {
			for _, tc := range run.TCP {
				if row := strings.Join(netnsTCPRow(run, tc), " "); !strings.Contains(table, row) {
					t.Errorf("%s: table lacks %q", path, row)
				}
			}
			rtt := fmt.Sprintf("%.3f %.3f %.3f %.3f", run.PingIdle.P50Ms, run.PingIdle.P99Ms, run.PingLoaded.P50Ms, run.PingLoaded.P99Ms)
			if !strings.Contains(table, rtt) {
				t.Errorf("%s: table lacks the RTTs %q", path, rtt)
			}
		}
		for _, want := range []string{"sequential / wireguard-go", "pipeline / wireguard-go", "pipeline / sequential"} {
			if !strings.Contains(table, want) {
				t.Errorf("%s: table lacks the ratio row %q:\n%s", path, want, b.String())
			}
		}
		var chart bytes.Buffer
		if err := svg.Write(&chart, r.Netns.AddChart(svg.Chart{}, r.Machine, r.Settings, 0)); err != nil {
			t.Fatal(err)
		}
		d := svgtest.Parse(t, chart.Bytes())
		for _, text := range []string{"TCP outbound, netns", "TCP inbound, netns", "iperf3 TCP streams", "PipeGuard pipeline", "PipeGuard sequential", "wireguard-go"} {
			if !slices.Contains(d.Texts, text) {
				t.Errorf("%s: chart lacks %q", path, text)
			}
		}
		// With one stream count a line has one point and draws none; the
		// markers and the legend remain.
		if n := strings.Count(chart.String(), `<polyline class="legend"`); n != 3 {
			t.Errorf("%s: %d legend entries, want 3", path, n)
		}
	}
}

// checkNetnsReport checks that a netns report of repeat repeats on cores
// cores holds every figure, sane, and that its ratios are its figures'
// quotients.
func checkNetnsReport(t *testing.T, nr *Report, repeat, cores int) {
	t.Helper()
	if nr == nil {
		t.Fatal("no netns figures")
	}
	if nr.MTU != 1280 || nr.TCPSeconds < 1 || nr.WireguardGoVersion == "" || nr.WireguardGoVersion == "unknown" || nr.Iperf3Version == "" {
		t.Errorf("settings %+v", nr)
	}
	var kinds []string
	gbps := map[string]float64{}
	unmanaged := false
	for _, run := range nr.Runs {
		k := core.Kind{Impl: run.Impl, Engine: run.Engine, Unmanaged: run.Unmanaged}.String()
		unmanaged = unmanaged || run.Unmanaged
		kinds = append(kinds, k)
		if len(run.TCP) < 2 || len(run.TCP) != len(nr.Runs[0].TCP) || len(run.Args) == 0 {
			t.Errorf("%s: %d TCP results, args %q", k, len(run.TCP), run.Args)
		}
		for _, tc := range run.TCP {
			what := fmt.Sprintf("%s %s ×%d", k, tc.Direction, tc.Streams)
			if !(tc.Gbps > 0) || len(tc.Samples) != repeat || !(tc.CPUPercent > 0) || tc.CPUPercent > 100*float64(cores)*1.1 {
				t.Errorf("%s: %+v", what, tc)
			}
			gbps[what] = tc.Gbps
		}
		for _, p := range []struct {
			name  string
			r     core.RTT
			limit float64 // ms
		}{{"idle", run.PingIdle, 500}, {"loaded", run.PingLoaded, 2000}} { // generous: CI shares the cores with other tests
			if p.r.Received == 0 || p.r.Received > p.r.Sent || !(p.r.P50Ms > 0) || p.r.P50Ms > p.r.P99Ms || p.r.P99Ms > p.limit {
				t.Errorf("%s: ping %s %+v", k, p.name, p.r)
			}
		}
		if !(run.CPUPercent > 0) || run.PeakRSSBytes < 1<<20 {
			t.Errorf("%s: CPU %v%%, peak RSS %d", k, run.CPUPercent, run.PeakRSSBytes)
		}
	}
	want := []string{"pipeguard sequential", "pipeguard pipeline", "wireguard-go"}
	if unmanaged { // a report since the latency table: each engine also with queue management off
		want = []string{"pipeguard sequential", "pipeguard sequential (queue management off)",
			"pipeguard pipeline", "pipeguard pipeline (queue management off)", "wireguard-go"}
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("tunnels %q, want %q", kinds, want)
	}
	for _, run := range nr.Runs {
		for _, tc := range run.TCP {
			c := fmt.Sprintf(" %s ×%d", tc.Direction, tc.Streams)
			wantWG, wantSeq := 0.0, 0.0
			if run.Impl == core.ImplPipeGuard {
				wantWG = tc.Gbps / gbps["wireguard-go"+c]
				if run.Engine == "pipeline" {
					seq := core.Kind{Impl: core.ImplPipeGuard, Engine: "sequential", Unmanaged: run.Unmanaged}.String()
					wantSeq = tc.Gbps / gbps[seq+c]
				}
			}
			if !near(tc.VsWireguardGo, wantWG) || !near(tc.VsSequential, wantSeq) {
				t.Errorf("%s%s: ratios %v, %v; want %v, %v", run.Impl, c, tc.VsWireguardGo, tc.VsSequential, wantWG, wantSeq)
			}
		}
		checkLatency(t, run)
	}
}

// checkLatency checks a run's latency-under-load rows, if the report has
// them: idle, then outbound, inbound and both at the most streams, each
// with throughput (but idle), ping and probe series that got answers,
// percentiles in order, and generous bounds (CI shares the cores).
func checkLatency(t *testing.T, run Run) {
	t.Helper()
	if len(run.Latency) == 0 {
		return
	}
	k := core.Kind{Impl: run.Impl, Engine: run.Engine, Unmanaged: run.Unmanaged}.String()
	if len(run.Latency) != numLatencyLoads {
		t.Fatalf("%s: %d latency rows", k, len(run.Latency))
	}
	for i, row := range run.Latency {
		if row.Load != latencyLoads[i] || (i == 0) != (row.Gbps == 0) || (i == 0) != (row.Streams == 0) {
			t.Errorf("%s: row %d: %+v", k, i, row)
		}
		for _, l := range []struct {
			name string
			l    Latency
		}{{"ping", row.Ping}, {"probe", row.Probe}, {"probe app", row.ProbeApp}, {"path ping", row.Path},
			{"path probe", row.PathProbe}, {"path probe app", row.PathProbeApp}} {
			if l.l.Received == 0 || l.l.Received > l.l.Sent || !(l.l.P50Ms > 0) || l.l.P50Ms > l.l.P99Ms || l.l.P99Ms > l.l.P999Ms || l.l.P999Ms > 2000 {
				t.Errorf("%s: %s: %s %+v", k, row.Load, l.name, l.l)
			}
		}
		// Each answer's app round trip holds its probe round trip, so
		// every percentile of the one is at least the other's.
		for _, pair := range [][2]Latency{{row.Probe, row.ProbeApp}, {row.PathProbe, row.PathProbeApp}} {
			if pair[1].Sent != pair[0].Sent || pair[1].Received != pair[0].Received ||
				pair[1].P50Ms < pair[0].P50Ms || pair[1].P99Ms < pair[0].P99Ms {
				t.Errorf("%s: %s: probe %+v, as the process saw it %+v", k, row.Load, pair[0], pair[1])
			}
		}
	}
}

// squeeze collapses runs of spaces, so table rows compare as words.
func squeeze(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(strings.Join(strings.Fields(line), " ") + "\n")
	}
	return b.String()
}

// TestSummarizeNetns feeds made-up samples of two repeats through the
// arithmetic: medians of two are means, pings pool, RSS is the largest,
// CPU is over all runs, and the ratios follow.
func TestSummarizeNetns(t *testing.T) {
	kinds := []core.Kind{{Impl: core.ImplPipeGuard, Engine: "sequential"}, {Impl: core.ImplPipeGuard, Engine: "pipeline"}, {Impl: core.ImplWireguardGo}}
	cases := []tcpCase{{core.Outbound, 1}, {core.Inbound, 1}}
	sample := func(gOut, gIn float64, rss uint64, rtts ...float64) netnsSample {
		return netnsSample{
			TCP: []TCPSample{
				{Gbps: gOut, WallSeconds: 2, CPUSeconds: 2, Retransmits: 4},
				{Gbps: gIn, WallSeconds: 2, CPUSeconds: 3},
			},
			Idle:    nsenv.PingResult{Sent: len(rtts) + 1, Received: len(rtts), RTTs: rtts},
			Loaded:  nsenv.PingResult{Sent: 1, Received: 1, RTTs: []float64{5}},
			PeakRSS: rss,
		}
	}
	samples := [][]netnsSample{
		{sample(2, 4, 10, 0.1), sample(4, 6, 30, 0.3)},
		{sample(3, 9, 20, 0.2), sample(5, 11, 15, 0.4)},
		{sample(2, 5, 100, 0.5), sample(2, 5, 200, 0.6)},
	}
	runs := summarizeNetns(kinds, [][]string{{"a"}, {"b"}, {"c"}}, cases, samples, 4)
	seq, pipe, wg := runs[0], runs[1], runs[2]
	if seq.TCP[0].Gbps != 3 || seq.TCP[1].Gbps != 5 || pipe.TCP[0].Gbps != 4 || pipe.TCP[1].Gbps != 10 {
		t.Errorf("medians %+v %+v", seq.TCP, pipe.TCP)
	}
	if !near(pipe.TCP[0].VsSequential, 4.0/3) || !near(pipe.TCP[1].VsSequential, 2) || seq.TCP[0].VsSequential != 0 {
		t.Errorf("pipe/seq %v %v %v", pipe.TCP[0].VsSequential, pipe.TCP[1].VsSequential, seq.TCP[0].VsSequential)
	}
	if !near(seq.TCP[0].VsWireguardGo, 1.5) || !near(pipe.TCP[1].VsWireguardGo, 2) || wg.TCP[0].VsWireguardGo != 0 {
		t.Errorf("vs wg-go %v %v %v", seq.TCP[0].VsWireguardGo, pipe.TCP[1].VsWireguardGo, wg.TCP[0].VsWireguardGo)
	}
	if seq.TCP[0].CPUPercent != 100 || seq.TCP[1].CPUPercent != 150 || seq.CPUPercent != 125 || seq.TCP[0].Retransmits != 4 {
		t.Errorf("CPU %+v, overall %v", seq.TCP, seq.CPUPercent)
	}
	if seq.PingIdle.Sent != 4 || seq.PingIdle.Received != 2 || seq.PingIdle.P50Ms != 0.1 || seq.PingIdle.P99Ms != 0.3 ||
		seq.PingLoaded.Received != 2 || seq.PeakRSSBytes != 30 || wg.PeakRSSBytes != 200 || pipe.Args[0] != "b" {
		t.Errorf("run %+v", seq)
	}
	if len(seq.TCP[0].Samples) != 2 {
		t.Errorf("samples %+v", seq.TCP[0].Samples)
	}
}

func TestNetnsPlan(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, 10 * time.Second},
		{Config{Quick: true}, 2 * time.Second},
		{Config{Duration: 2500 * time.Millisecond}, 3 * time.Second},
		{Config{Duration: 200 * time.Millisecond}, time.Second},
	} {
		if c := tc.cfg.WithDefaults(); c.Duration != tc.want {
			t.Errorf("%+v: iperf3 time %v, want %v", tc.cfg, c.Duration, tc.want)
		}
	}
	c := Config{}.WithDefaults()
	want := []tcpCase{{core.Outbound, 1}, {core.Inbound, 1}, {core.Outbound, 4}, {core.Inbound, 4}}
	if got := c.tcpCases(); !slices.Equal(got, want) || loadedCase(got) != (tcpCase{core.Outbound, 4}) {
		t.Errorf("cases %v", got)
	}
	if k := core.Kinds(c.Engines); len(k) != 3 || k[2].Impl != core.ImplWireguardGo || k[0].Engine != "sequential" {
		t.Errorf("kinds %v", k)
	}
	if c.pingIdleCount() != pingIdleCount || (Config{Quick: true}).pingIdleCount() != pingQuickCount {
		t.Errorf("idle pings %d, quick %d", c.pingIdleCount(), (Config{Quick: true}).pingIdleCount())
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
