package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core/nsenv/nsenvtest"
	"pipeguard/bench/core/svg/svgtest"
)

// requireNetns skips t unless the netns mode can run here (root, ip,
// iperf3, ping, /dev/net/tun); with CI=true it fails instead.
func requireNetns(t *testing.T) {
	t.Helper()
	nsenvtest.Require(t, netnsUsable())
}

// TestNetnsQuick runs `bench --mode netns --quick` end to end: real
// namespaces, both PipeGuard engines and wireguard-go, iperf3 and ping.
// It checks that the JSON holds every figure (throughput for every
// tunnel, direction and stream count; RTTs, CPU and RSS; the ratios),
// that the table and the chart show them, and that nothing is left
// behind. About 35 s on two cores.
func TestNetnsQuick(t *testing.T) {
	requireNetns(t)
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("runs tunnels for half a minute")
	}
	cfg := &Config{Mode: ModeNetns, Quick: true,
		CommandLine: []string{"bench", "--mode", "netns", "--quick"}}
	rep, table := runNsMode(t, cfg)
	checkNetnsReport(t, rep)
	for _, run := range rep.Netns.Runs {
		for _, tc := range run.TCP {
			if row := strings.Join(netnsTCPRow(run, tc), " "); !strings.Contains(squeeze(table), row) {
				t.Errorf("table lacks the row %q:\n%s", row, table)
			}
		}
	}
	for _, w := range rep.Netns.Warnings {
		t.Logf("warning: %s", w)
	}
	svg, err := os.ReadFile(cfg.SVGPath)
	if err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, svg)
	for _, name := range []string{"PipeGuard pipeline", "PipeGuard sequential", "wireguard-go"} {
		if _, ok := d.Series[name]; !ok {
			t.Errorf("chart has no line %q: %v", name, d.Series)
		}
	}
}

// runNsMode runs the harness as cfg says, for 3 minutes at most, with its
// JSON and SVG files in a test directory (it sets cfg's paths and
// progress writer), checks that the run left nothing behind, and returns
// the JSON report read back and the table printed.
func runNsMode(t *testing.T, cfg *Config) (*Report, string) {
	t.Helper()
	dir := t.TempDir()
	cfg.JSONPath, cfg.SVGPath, cfg.Progress = filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg"), nsenvtest.Log{T: t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	begin := time.Now()
	var stdout bytes.Buffer
	_, err := Run(ctx, *cfg, &stdout)
	t.Logf("%s run: %v\n%s", cfg.Mode, time.Since(begin).Round(100*time.Millisecond), stdout.String())
	nsenvtest.AssertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	return readReportFile(t, cfg.JSONPath), stdout.String()
}
