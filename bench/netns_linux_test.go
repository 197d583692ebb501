package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireNetns skips t unless the netns mode can run here (root, ip,
// iperf3, ping, /dev/net/tun); with CI=true it fails instead, so that CI
// cannot pass by skipping.
func requireNetns(t *testing.T) {
	t.Helper()
	err := netnsUsable()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: this test must run, but: %v", err)
	}
	t.Skip(err)
}

// testLog passes progress lines to t.Log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
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
	d := parseSVG(t, svg)
	for _, name := range []string{"PipeGuard pipeline", "PipeGuard sequential", "wireguard-go"} {
		if _, ok := d.series[name]; !ok {
			t.Errorf("chart has no line %q: %v", name, d.series)
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
	cfg.JSONPath, cfg.SVGPath, cfg.Progress = filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg"), testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	begin := time.Now()
	var stdout bytes.Buffer
	_, err := Run(ctx, *cfg, &stdout)
	t.Logf("%s run: %v\n%s", cfg.Mode, time.Since(begin).Round(100*time.Millisecond), stdout.String())
	assertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	return readReportFile(t, cfg.JSONPath), stdout.String()
}

// assertNothingLeft checks that this process left no namespace, socket,
// directory or process behind.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	pid := strconv.Itoa(os.Getpid())
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), nsPrefix+pid+"-") {
		t.Errorf("namespaces left behind:\n%s", out)
	}
	for _, pattern := range []string{filepath.Join(uapiDir, ifPrefix+pid+"t*"), filepath.Join(os.TempDir(), buildPrefix+pid+"-*")} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			t.Errorf("left behind: %q", m)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		i := bytes.LastIndexByte(b, ')')
		if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) > 1 && f[1] == pid {
			t.Errorf("child process left: %s", b)
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if bytes.Contains(cmdline, []byte(buildPrefix+pid+"-")) {
			t.Errorf("tunnel process left: %q", cmdline)
		}
	}
}

// TestRemoveStale leaves behind what a crashed run would (a namespace with
// a process in it, a socket, a directory, all named for a pid that has
// exited) and one of a live run, and checks that removeStale removes the
// first and keeps the second.
func TestRemoveStale(t *testing.T) {
	requireNetns(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid
	staleNS := fmt.Sprintf("%s%d-1a", nsPrefix, deadPid)
	liveNS := fmt.Sprintf("%s%d-999a", nsPrefix, os.Getpid())
	for _, ns := range []string{staleNS, liveNS} {
		if err := ipCmd("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, ns := range []string{staleNS, liveNS} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	p, err := startProc(staleNS, "sleeper", nil, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(time.Second) })
	if err := os.MkdirAll(uapiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(uapiDir, fmt.Sprintf("%s%dt1a.sock", ifPrefix, deadPid))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-x", buildPrefix, deadPid))
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sock); os.RemoveAll(dir) })

	removed := removeStale()
	t.Logf("removed %q", removed)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Error("the process in the stale namespace still runs")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), staleNS) || !strings.Contains(string(out), liveNS) {
		t.Errorf("namespaces after removeStale:\n%s", out)
	}
	for _, path := range []string{sock, dir} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v", path, err)
		}
	}
}
