package e2e

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/noise"
)

// The client's lifecycle end to end (issue 14's "must show" items 1, 3,
// 4, 8 and 14): what it does at its open-file limit, when its interface
// is deleted, with an HTTP connection held open at stop, and with signals
// that arrive while it starts.

// loneNode is a node in a namespace of its own with a config without
// peers: enough for a client that only has to start and stop.
func loneNode(t *testing.T) *node {
	t.Helper()
	n := newNode(t, netnstest.New(t), netip.MustParseAddr("10.99.0.1"), 1)
	n.writeConfig(t)
	return n
}

// cpuTime is the CPU time (user and system) process pid has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on every Linux port Go supports
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// TestUAPIAtFileLimit is issue 14 item 1: with its open-file limit at 30
// and 40 connections held on its UAPI socket, the client once logged
// "UAPI socket failed" half a million times a second at full CPU and
// deleted its socket. Now it backs off: under 10% CPU over 5 s, fewer
// than 100 new log lines, and `wg show` answers once the connections
// close.
func TestUAPIAtFileLimit(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	p := n.startClient(t, b, "--log-level", "info")
	pid := p.cmd.Process.Pid
	limit := unix.Rlimit{Cur: 30, Max: 30}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &limit, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 40 {
		c, err := net.Dial("unix", uapi.SocketPath(n.iface))
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	lines, cpu := p.out.Lines(), cpuTime(t, pid)
	const window = 5 * time.Second
	time.Sleep(window)
	lines, cpu = p.out.Lines()-lines, cpuTime(t, pid)-cpu
	t.Logf("at the file limit for %v: %v of CPU, %d log lines", window, cpu, lines)
	if cpu > window/10 {
		t.Errorf("client used %v of CPU in %v at its file limit: over 10%%", cpu, window)
	}
	if lines >= 100 {
		t.Errorf("client logged %d lines in %v at its file limit", lines, window)
	}
	if !strings.Contains(p.out.String(), "too many open files") {
		t.Errorf("the accept error was not logged")
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// The accept backoff is at most 1 s; allow for a loaded machine.
	var out []byte
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out, err = n.ns.Command(t.Context(), "wg", "show", n.iface).CombinedOutput(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("wg show after the connections closed: %v\n%s", err, out)
	}
	if code, _ := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	assertGone(t, n)
}

// waitExit waits up to within for p to exit and returns its exit code.
func (p *proc) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.exit:
		p.exit <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("%s still running after %v", p.name, within)
		return 0
	}
}

// TestInterfaceDeleted is issue 14 item 3: after `ip link del` the client
// once ran on with peers and all, and exited 0 when stopped. Now it exits
// within 3 s, non-zero (so that systemd's Restart=on-failure brings the
// tunnel back), says why, and leaves nothing behind.
func TestInterfaceDeleted(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	p := n.startClient(t, b)
	n.ns.MustRun(t, "ip", "link", "del", n.iface)
	if code := p.waitExit(t, 3*time.Second); code != 1 {
		t.Errorf("exit %d after ip link del, want 1", code)
	}
	if want := "interface " + n.iface + " was deleted"; !strings.Contains(p.out.String(), want) {
		t.Errorf("the client did not say %q", want)
	}
	assertGone(t, n)
}

// TestStopWithIdleHTTPConnection is issue 14 item 4: one idle TCP
// connection to the metrics port (or a running pprof profile) made SIGTERM
// take 2 s and exit 1. Now the client still exits 0 within 2 s.
func TestStopWithIdleHTTPConnection(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	p := n.startClient(t, b, "--metrics-addr", "127.0.0.1:9586", "--pprof-addr", "127.0.0.1:6060")
	for _, addr := range []string{"127.0.0.1:9586", "127.0.0.1:6060"} {
		var c net.Conn
		if err := n.ns.Do(func() (err error) { c, err = net.Dial("tcp", addr); return err }); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond) // accepted, and idle
	code, took := p.stop(t, syscall.SIGTERM, 5*time.Second)
	t.Logf("stopped in %v with two idle HTTP connections", took)
	if code != 0 || took > 2*time.Second {
		t.Fatalf("exit %d after %v with idle HTTP connections; want 0 within 2 s", code, took)
	}
	assertGone(t, n)
}

// TestRefusedReloadChangesNothing is issue 14 item 7: a reload with a
// low-order public key and a new valid peer once logged "reload failed
// part-way", removed peers, installed routes for both new peers, and
// repeated that on every later reload. Now the file is refused whole.
func TestRefusedReloadChangesNothing(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	other := newNode(t, n.ns, netip.MustParseAddr("10.99.0.2"), 2)
	n.writeConfig(t, other.asPeer(false))
	p := n.startClient(t, b)
	before := wgShow(t, n, "dump")
	lowOrder := config.Peer{PublicKey: noise.PublicKey{1}, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.0.0/24")}}
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	fresh := config.Peer{PublicKey: k.Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.202.0.0/24")}}
	n.writeConfig(t, lowOrder, fresh)
	for i := range 2 {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Count(p.out.String(), "reload refused") > i })
	}
	if after := wgShow(t, n, "dump"); after != before {
		t.Errorf("a refused reload changed the tunnel:\nbefore %s\nafter  %s", before, after)
	}
	if routes := n.ns.MustRun(t, "ip", "route"); strings.Contains(routes, "10.201.") || strings.Contains(routes, "10.202.") {
		t.Errorf("a refused reload installed routes:\n%s", routes)
	}
	if strings.Contains(p.out.String(), "config reloaded") {
		t.Errorf("the client reports a refused reload as applied")
	}
	stopAndCheck(t, p, n)
}
