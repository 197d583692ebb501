package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/sdnotify/sdnotifytest"
)

// unitFilter returns the SystemCallFilter= lines of the standalone unit,
// in order: an allow list, then what is taken from it. (TestSystemdUnits
// checks that the tunnel unit says the same.)
func unitFilter(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../pipeguard-headless-client@.service")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SystemCallFilter="); ok {
			lines = append(lines, v)
		}
	}
	if len(lines) == 0 {
		t.Fatal("the unit has no SystemCallFilter=")
	}
	return lines
}

// TestSyscallsWithinUnitFilter runs the client under strace through a
// whole life as a notify service with a watchdog (start, READY=1,
// handshake and traffic with a wireguard-go peer, wg show and wg set on
// its socket, a SIGHUP reload, watchdog pings, SIGTERM) and checks
// that every system call it made is one the units' SystemCallFilter=
// lets through, as systemd-analyze expands it: a call outside would fail
// with EPERM under systemd, which no other test here can show, since
// systemd is not this machine's init.
func TestSyscallsWithinUnitFilter(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is needed (scripts/setup.sh installs it)")
	}
	filter := unitFilter(t)
	allowed := allowedSyscalls(t, filter)

	a, z := newNodes(t)
	// A full tunnel: policy rules and the fwmark are in the trace too.
	a.writeConfig(t, fullTunnelPeer(z))
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)

	// As systemd runs it: notifications and a watchdog (1 s) included,
	// and started real-time (CPUSchedulingPolicy=rr), so that the client
	// only checks its policy, as under the unit, whose filter refuses
	// sched_setattr.
	sd := sdnotifytest.Listen(t)
	trace := filepath.Join(t.TempDir(), "strace")
	p := start(t, a.ns, "client under strace", "chrt", []string{"PIPEGUARD_ID=e2e-syscalls", "NOTIFY_SOCKET=" + sd.Path, "WATCHDOG_USEC=1000000"},
		"--rr", "1", strace, "-f", "-qq", "-o", trace, b.client, "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir())
	p.waitSocket(t, a.iface)
	client := tracedChild(t, p.cmd.Process.Pid)

	sd.WaitFor(t, "READY", "1", 5*time.Second, nil)
	a.ping(t, z.inner[0].Addr())
	transfer(t, a, z, 1<<20, nil)
	transfer(t, z, a, 1<<20, nil)
	// The link watcher at work: an MTU set back, routes restored.
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "mtu", "1420")
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "down")
	a.ns.MustRun(t, "ip", "link", "set", a.iface, "up")
	waitOutput(t, p, "restored what it lost")
	a.ping(t, z.inner[0].Addr())
	wg(t, "show", a.iface)
	wg(t, "set", a.iface, "peer", z.key.Public().String(), "persistent-keepalive", "25")
	if err := syscall.Kill(client, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, p, "reloading config")
	sd.WaitFor(t, "WATCHDOG", "1", 5*time.Second, nil)
	stopTraced(t, p, client)
	if outside := syscallsOutside(t, trace, allowed); len(outside) > 0 {
		t.Errorf("system calls outside SystemCallFilter=%q: %v", filter, outside)
	}
}

// stopTraced sends SIGTERM to client, the process that strace (p) runs,
// and fails t unless p then exits cleanly within 10 s.
func stopTraced(t *testing.T, p *proc, client int) {
	t.Helper()
	if err := syscall.Kill(client, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exit:
		p.exit <- err
		if err != nil {
			t.Fatalf("client under strace: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client did not stop")
	}
}

// syscallsOutside returns, sorted, the system calls in the strace output
// trace that allowed lacks, and logs how many distinct calls it holds.
func syscallsOutside(t *testing.T, trace string, allowed map[string]bool) []string {
	t.Helper()
	used := tracedSyscalls(t, trace)
	var outside []string
	for name := range used {
		if !allowed[name] {
			outside = append(outside, name)
		}
	}
	slices.Sort(outside)
	t.Logf("%d distinct system calls", len(used))
	return outside
}

// allowedSyscalls expands filter with systemd-analyze's own tables.
func allowedSyscalls(t *testing.T, filter []string) map[string]bool {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "syscall-filter").Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v", err)
	}
	groups := map[string][]string{}
	var cur string
	for line := range strings.SplitSeq(string(out), "\n") {
		switch s := strings.TrimSpace(line); {
		case s == "" || strings.HasPrefix(s, "#"):
		case !strings.HasPrefix(line, " "):
			cur = s
		default:
			groups[cur] = append(groups[cur], s)
		}
	}
	var expand func(name string, into map[string]bool)
	expand = func(name string, into map[string]bool) {
		if !strings.HasPrefix(name, "@") {
			into[name] = true
			return
		}
		members, ok := groups[name]
		if !ok {
			t.Fatalf("systemd-analyze knows no group %s", name)
		}
		for _, m := range members {
			expand(m, into)
		}
	}
	allowed := map[string]bool{}
	for _, line := range filter {
		deny := strings.HasPrefix(line, "~")
		set := map[string]bool{}
		for _, name := range strings.Fields(strings.TrimPrefix(line, "~")) {
			expand(name, set)
		}
		for name := range set {
			if deny {
				delete(allowed, name)
			} else {
				allowed[name] = true
			}
		}
	}
	return allowed
}

// tracedChild returns the pid of the process strace (pid) started.
func tracedChild(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("strace has children %q, want one", f)
	}
	child, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// straceCall matches the system call of a line of `strace -f` output:
// "1234 name(args...", and the resumption of one: "1234 <... name resumed>".
var straceCall = regexp.MustCompile(`^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)`)

// tracedSyscalls reads the names of the system calls in an strace log.
func tracedSyscalls(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	used := map[string]bool{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if m := straceCall.FindStringSubmatch(s.Text()); m != nil {
			used[m[1]] = true
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if !used["execve"] || !used["ioctl"] {
		t.Fatalf("the strace log %s does not look like one: %v", path, used)
	}
	return used
}

// waitOutput waits up to 5 s for s in p's output.
func waitOutput(t *testing.T, p *proc, s string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.out.String(), s) {
			return
		}
	}
	t.Fatalf("%q not in the output of %s within 5 s", s, p.name)
}

// TestCleanupSyscallsWithinUnitFilter: the cleanup command, which the
// unit runs as ExecStopPost= under the same SystemCallFilter=, stays
// within it while it restores the routing a killed full tunnel left.
func TestCleanupSyscallsWithinUnitFilter(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is needed (scripts/setup.sh installs it)")
	}
	filter := unitFilter(t)
	allowed := allowedSyscalls(t, filter)
	l := newLeakLab(t, b, allV4, allV6)
	l.kill(t, l.startClient(t, b))
	trace := filepath.Join(t.TempDir(), "strace")
	code, stdout, stderr := runVia(t, l.a, []string{"SERVICE_RESULT=success"},
		strace, "-f", "-qq", "-o", trace, b.client, "cleanup", "--keep-after-crash", "--state-dir", l.state, l.a.iface)
	if code != 0 || !strings.Contains(stdout, "removed") {
		t.Fatalf("cleanup: exit %d:\n%s%s", code, stdout, stderr)
	}
	if got := policyState(t, l.a.ns); got != l.before {
		t.Errorf("after cleanup:\n%s\nwant\n%s", got, l.before)
	}
	if outside := syscallsOutside(t, trace, allowed); len(outside) > 0 {
		t.Errorf("system calls outside SystemCallFilter=%q: %v", filter, outside)
	}
}
