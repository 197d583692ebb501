package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/internal/netnstest"
)

// The kernel's WireGuard selftest, adapted to a userspace implementation
// (scripts/netns-selftest.sh, whose header says how), run against
// PipeGuard as pipeguard-go, and against Debian's wireguard-go for
// comparison.

// selftestScript is the adapted selftest, from this package's directory.
const selftestScript = "../../../scripts/netns-selftest.sh"

// selftestResult is what one run of the script reported.
type selftestResult struct {
	passed, failed, skipped int
	failures                []selftestCheck // every failure, in order
	skips                   []selftestCheck
	out                     string
	implLog                 string // the implementation's output
}

// selftestCheck is one check of the script, by line and command (or,
// for a skip, its reason), and for a failure the time of day it was
// seen, as the script prints it (HH:MM:SS.mmm).
type selftestCheck struct {
	line int
	what string
	at   string
}

var (
	ansiEscape    = regexp.MustCompile("\x1b\\[[0-9;]*m")
	failLine      = regexp.MustCompile(`^\[-\] FAIL line (\d+)(?: \(\w+\))?: (.*)$`)
	skipLine      = regexp.MustCompile(`^\[~\] SKIP line (\d+): (.*)$`)
	selftestCount = regexp.MustCompile(`^checks: (\d+) passed, (\d+) failed, (\d+) skipped`)
)

// parseSelftest reads the script's output.
func parseSelftest(out string) (selftestResult, bool) {
	r := selftestResult{out: out}
	summary := false
	for _, line := range strings.Split(ansiEscape.ReplaceAllString(out, ""), "\n") {
		if m := failLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			r.failures = append(r.failures, selftestCheck{line: n, what: m[2]})
		}
		if at, ok := strings.CutPrefix(line, "    at "); ok && len(r.failures) > 0 {
			r.failures[len(r.failures)-1].at = at
		}
		if m := skipLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			r.skips = append(r.skips, selftestCheck{line: n, what: m[2]})
		}
		if m := selftestCount.FindStringSubmatch(line); m != nil {
			r.passed, _ = strconv.Atoi(m[1])
			r.failed, _ = strconv.Atoi(m[2])
			r.skipped, _ = strconv.Atoi(m[3])
			summary = true
		}
	}
	return r, summary
}

// requireTools fails (CI) or skips the test unless every tool the
// script runs is installed; scripts/setup.sh installs them.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: missing %s (scripts/setup.sh installs them)", strings.Join(missing, ", "))
	}
	t.Skipf("missing %s (scripts/setup.sh installs them)", strings.Join(missing, ", "))
}

// runSelftest runs the script with implementation impl (the command that
// creates an interface, as wg-quick's WG_QUICK_USERSPACE_IMPLEMENTATION)
// and env, each iperf3 client for iperfSeconds, within limit.
func runSelftest(t *testing.T, impl string, iperfSeconds int, limit time.Duration, env ...string) selftestResult {
	t.Helper()
	requireTools(t, "wg", "ip", "ping", "iperf3", "ncat", "iptables", "ss", "timeout")
	logDir := t.TempDir()
	implLog := filepath.Join(logDir, "impl.log")
	// A copy: bash reads a script as it goes, so an edit of the
	// original during a run would change what the run does.
	script, err := os.ReadFile(selftestScript)
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(logDir, "netns-selftest.sh")
	if err := os.WriteFile(copied, script, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", copied)
	cmd.Env = append(os.Environ(), append(env,
		"WG_SELFTEST_USERSPACE_IMPLEMENTATION="+impl,
		"WG_SELFTEST_IPERF_SECONDS="+strconv.Itoa(iperfSeconds),
		"WG_SELFTEST_IMPL_LOG="+implLog)...)
	// Its own process group, ended whole if it runs out of time: the
	// script's cleanup, which ends the implementation's processes, gets
	// SIGTERM first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(begin).Round(time.Second)
	r, summary := parseSelftest(string(out))
	b, _ := os.ReadFile(implLog)
	r.implLog = string(b)
	if !summary {
		t.Logf("%s's log (last 8 KiB):\n%s", impl, tail(r.implLog, 8<<10))
		t.Fatalf("the selftest ended without its summary after %v (%v); its output (last 16 KiB):\n%s", took, err, tail(string(out), 16<<10))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%s: %d passed, %d failed, %d skipped, in %v (load average %s)", filepath.Base(impl), r.passed, r.failed, r.skipped, took, strings.Join(strings.Fields(string(load))[:3], " "))
	for _, s := range r.skips {
		t.Logf("skipped, line %d: %s", s.line, s.what)
	}
	return r
}

// before returns the n lines of out before f's FAIL line.
func before(out string, f selftestCheck, n int) string {
	lines := strings.Split(ansiEscape.ReplaceAllString(out, ""), "\n")
	marker := "[-] FAIL line " + strconv.Itoa(f.line) + " "
	for i, l := range lines {
		if strings.HasPrefix(l, marker) {
			return strings.Join(lines[max(0, i-n):i], "\n")
		}
	}
	return ""
}

// logAround returns the lines of log (each starting with the time of
// day, HH:MM:SS.mmm, as the client's and wireguard-go's logs do) from d
// before at to a second after it.
func logAround(log, at string, d time.Duration) string {
	t0, err := time.Parse("15:04:05.000", at)
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if len(l) < 12 {
			continue
		}
		t, err := time.Parse("15:04:05.000", l[:12])
		if err == nil && !t.Before(t0.Add(-d)) && !t.After(t0.Add(time.Second)) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// selftestSection is the section of the script a line is in: its last
// top-level comment that starts with a capital letter before the line
// (the original's section comments: "# Test that ...", "# Now we ..."),
// not counting the adaptation's own "# Adapted:" notes.
func selftestSection(t *testing.T, line int) string {
	t.Helper()
	b, err := os.ReadFile(selftestScript)
	if err != nil {
		t.Fatal(err)
	}
	section := ""
	for i, l := range strings.Split(string(b), "\n") {
		if i+1 >= line {
			break
		}
		if len(l) > 2 && strings.HasPrefix(l, "# ") && l[2] >= 'A' && l[2] <= 'Z' && !strings.HasPrefix(l, "# Adapted") {
			section = l[2:]
		}
	}
	return section
}

// selftestExpected is a failure the test expects, by section and
// command ("" for any command of the section), and why.
type selftestExpected struct {
	section, command, why string
}

// Sections of the original.
const (
	sectionRouteMTU   = "Test that route MTUs work with the padding"
	sectionNotSticky  = "First we check that we aren't overly sticky and can fall over to new IPs when old ones are removed"
	sectionReplyTo    = "Now we show that we can successfully do reply to sender routing"
	sectionOtherIface = "What happens if the inbound destination address belongs to a different interface as the default route?"
	sectionPrecedence = "Now we see what happens if another interface route takes precedence over an ongoing one"
)

// pipeguardExpected are the checks PipeGuard fails: one, by design.
// The test names those that pass now, so that they can be dropped.
var pipeguardExpected = []selftestExpected{
	{sectionRouteMTU, "n2 ping -c 1 -W 1 -s 1269 192.168.241.1",
		"a 1297-byte inner packet: PipeGuard carries at most 1280 bytes, by design (docs/ARCHITECTURE.md)"},
}

// wireguardGoExpected: Debian's wireguard-go (0.0.20220316) keeps a
// source address that is gone for the next send, so the first ping
// after an address is removed fails (measured); the kernel clears it on
// the failed send. Which source-address checks fail depends on the
// addresses routing picks, as for PipeGuard.
var wireguardGoExpected = []selftestExpected{
	{sectionNotSticky, "", "wireguard-go 0.0.20220316 sends from a removed source address"},
	{sectionReplyTo, "", "source-address selection"},
	{sectionOtherIface, "", "source-address selection"},
	{sectionPrecedence, "", "source-address selection"},
}

// checkSelftest fails t for every failure of r that expected does not
// name, and logs those it names and those of expected that passed.
func checkSelftest(t *testing.T, r selftestResult, expected []selftestExpected) {
	t.Helper()
	hit := make([]bool, len(expected))
	for _, f := range r.failures {
		section := selftestSection(t, f.line)
		known := false
		for i, e := range expected {
			if e.section == section && (e.command == "" || e.command == f.what) {
				known, hit[i] = true, true
				t.Logf("expected failure (%s), line %d: %s", e.why, f.line, f.what)
				break
			}
		}
		if !known {
			t.Errorf("check failed, line %d (%s): %s; the output before it:\n%s\nthe implementation's log around it:\n%s",
				f.line, section, f.what, before(r.out, f, 30), logAround(r.implLog, f.at, 3*time.Second))
		}
	}
	for i, e := range expected {
		if !hit[i] && e.command != "" {
			t.Logf("passes now (%s): %s: %s; drop it from the expected failures", e.why, e.section, e.command)
		}
	}
}

// selftestRuns says whether the selftest runs: it takes minutes (about
// 10 on a 2-vCPU machine under load), so it runs when asked, with
// PIPEGUARD_SELFTEST=1 (`make selftest`).
func selftestRuns(t *testing.T) {
	t.Helper()
	if os.Getenv("PIPEGUARD_SELFTEST") != "1" {
		t.Skip("the kernel selftest takes minutes: run it with `make selftest` (PIPEGUARD_SELFTEST=1)")
	}
}

// TestKernelSelftest runs the kernel's WireGuard selftest, adapted, on
// PipeGuard started as pipeguard-go, each iperf3 client for 1 s (3 s
// in the original) and the 130,560-entry steps bounded at 30 s. Every
// check must pass, be skipped by the script as one a userspace
// implementation cannot do (the reasons are logged), or be the one of
// pipeguardExpected.
func TestKernelSelftest(t *testing.T) {
	selftestRuns(t)
	b := binaries(t)
	r := runSelftest(t, wireguardGo(t, b), 1, 30*time.Minute,
		"PIPEGUARD_STATE_DIR="+t.TempDir(), "PIPEGUARD_ID=e2e-selftest", "LOG_LEVEL=debug", "WG_SELFTEST_SLOW_SECONDS=30")
	checkSelftest(t, r, pipeguardExpected)
}

// TestKernelSelftestWireguardGo runs the same script on Debian's
// wireguard-go, for comparison, the same way: an established userspace
// implementation passes every check outside the source-address
// sections, which shows that the adaptation asks nothing a userspace
// implementation cannot do.
func TestKernelSelftestWireguardGo(t *testing.T) {
	selftestRuns(t)
	netnstest.RequireRoot(t)
	requireTools(t, "wireguard-go")
	r := runSelftest(t, "wireguard-go", 1, 30*time.Minute, "WG_SELFTEST_SLOW_SECONDS=30")
	checkSelftest(t, r, wireguardGoExpected)
}
