package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
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

// TestProbeTakesOutTurnaround runs the probe between two namespaces
// against an echo server that holds every request for 20 ms: the round
// trip as the sending process saw it holds the wait, the probe's (kernel
// timestamps, the server's turnaround out) does not.
func TestProbeTakesOutTurnaround(t *testing.T) {
	requireNetns(t)
	env, err := nsenv.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Log(err)
		}
	})
	const hold = 20 * time.Millisecond
	echo, err := startEchoHolding(env.B, netip.AddrPortFrom(netip.IPv4Unspecified(), probePort), hold)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.close()
	r, err := runProbe(context.Background(), env.A, netip.AddrPortFrom(netip.MustParseAddr(nsenv.OuterB), probePort), 0, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// One request every 10 ms, each held 20 ms by a server that serves
	// one at a time: the answers come late but all within probeLate.
	if r.Sent < 40 || r.Received != r.Sent || len(r.RTTs) != r.Received || len(r.AppRTTs) != r.Received {
		t.Fatalf("sent %d, received %d, %d round trips, %d app round trips", r.Sent, r.Received, len(r.RTTs), len(r.AppRTTs))
	}
	for i := range r.RTTs {
		if r.AppRTTs[i] < float64(hold)/1e6 || r.RTTs[i] < 0 || r.RTTs[i] > r.AppRTTs[i]-float64(hold)/1e6 {
			t.Errorf("answer %d: round trip %.3f ms, app %.3f ms, with a server that held it %v", i, r.RTTs[i], r.AppRTTs[i], hold)
		}
	}
	if p50 := core.Percentile(r.RTTs, 50); p50 > 5 {
		t.Errorf("probe p50 %.3f ms between two idle namespaces: the server's turnaround was not taken out", p50)
	}
}
