package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv/nsenvtest"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

// requireNetns skips t unless the netns mode can run here (root, ip,
// iperf3, ping, /dev/net/tun); with CI=true it fails instead.
func requireNetns(t *testing.T) {
	t.Helper()
	nsenvtest.Require(t, netnsUsable())
}

// TestNetnsQuick runs the netns mode's quick form end to end: real
// namespaces, both PipeGuard engines with queue management on and off
// and wireguard-go, iperf3, ping and the UDP probe. It checks that the
// report holds every figure (throughput for every tunnel, direction and
// stream count; RTTs, CPU and RSS; the ratios; the latency-under-load
// rows), that the table and the chart show them, and that nothing is
// left behind. About 75 s on two cores.
func TestNetnsQuick(t *testing.T) {
	requireNetns(t)
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("runs tunnels for half a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	begin := time.Now()
	nr, err := Measure(ctx, Config{Quick: true, Out: core.Out{W: nsenvtest.Log{T: t}}})
	t.Logf("netns run: %v", time.Since(begin).Round(100*time.Millisecond))
	nsenvtest.AssertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	st, m := core.Settings{Repeat: 1}, core.DescribeMachine(nil)
	checkNetnsReport(t, nr, st.Repeat, m.Cores)
	if nr.CongestionControl != DefaultCongestionControl {
		t.Errorf("TCP congestion control %q, want %q", nr.CongestionControl, DefaultCongestionControl)
	}
	// The report survives its JSON.
	j, err := json.Marshal(nr)
	if err != nil {
		t.Fatal(err)
	}
	var back *Report
	if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, nr) {
		t.Errorf("JSON round trip: %v", err)
	}
	var b strings.Builder
	nr.WriteTable(&b, st)
	table := b.String()
	t.Logf("\n%s", table)
	for _, run := range nr.Runs {
		for _, tc := range run.TCP {
			if row := strings.Join(netnsTCPRow(run, tc), " "); !strings.Contains(squeeze(table), row) {
				t.Errorf("table lacks the row %q:\n%s", row, table)
			}
		}
	}
	if !strings.Contains(table, "loaded latency (ms above idle p50, p99)   outbound  inbound  both\n") {
		t.Errorf("table lacks the latency summary lines:\n%s", table)
	}
	for _, w := range nr.Warnings {
		t.Logf("warning: %s", w)
	}
	var chart bytes.Buffer
	if err := svg.Write(&chart, nr.AddChart(svg.Chart{}, m, st, 0)); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, chart.Bytes())
	for _, name := range []string{"PipeGuard pipeline", "PipeGuard sequential", "wireguard-go"} {
		if _, ok := d.Series[name]; !ok {
			t.Errorf("chart has no line %q: %v", name, d.Series)
		}
	}
}
