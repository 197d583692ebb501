package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/sdnotify/sdnotifytest"
	"pipeguard/cmd/headless-client/uapi"
)

// The empty tunnel: `tunnel [--foreground] IFACE` and the
// binary under wireguard-go's name, `pipeguard-go [-f] IFACE`, as
// wg-quick runs a userspace WireGuard.

// wireguardGo returns a pipeguard-go link to the client, which then takes
// wireguard-go's command line, as `make install` links it.
func wireguardGo(t *testing.T, b bins) string {
	t.Helper()
	link := filepath.Join(filepath.Dir(b.client), "pipeguard-go")
	if err := os.Symlink(filepath.Base(b.client), link); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	return link
}

// tunnelEnv keeps the tunnel's device id off the host's state directory.
func tunnelEnv(t *testing.T, iface string) []string {
	return []string{"PIPEGUARD_ID=e2e-" + iface, "PIPEGUARD_STATE_DIR=" + t.TempDir()}
}

// daemonOf finds the detached process serving iface: the one whose
// command line is `… tunnel --foreground … -- iface`. 0: none.
func daemonOf(iface string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 3 && args[len(args)-1] == iface && args[len(args)-2] == "--" && contains(args, "tunnel") {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

// waitGone waits up to within for pid to exit and returns how long that
// took. It is not our child: it is watched through /proc, where an
// exited process stays a zombie until init reaps it.
func waitGone(t *testing.T, pid int, within time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	for time.Since(begin) < within {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return time.Since(begin)
		}
		// The state follows the command name, which ends with ')'.
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return time.Since(begin)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still running %v later", pid, within)
	return 0
}

// checkEmpty checks what an empty tunnel shows: its link down, no
// address, and over its socket no key and no peer.
func checkEmpty(t *testing.T, n *node) {
	t.Helper()
	link := n.ns.MustRun(t, "ip", "-o", "link", "show", n.iface)
	if !strings.Contains(link, "state DOWN") || strings.Contains(link, ",UP") {
		t.Errorf("the link is not down:\n%s", link)
	}
	if addrs := strings.TrimSpace(n.ns.MustRun(t, "ip", "-o", "address", "show", "dev", n.iface)); addrs != "" {
		t.Errorf("addresses on an empty tunnel:\n%s", addrs)
	}
	if key := strings.TrimSpace(wgShow(t, n, "private-key")); key != "(none)" {
		t.Errorf("wg show private-key = %q, want (none)", key)
	}
	if peers := strings.TrimSpace(wgShow(t, n, "peers")); peers != "" {
		t.Errorf("wg show peers = %q, want none", peers)
	}
}

// TestTunnelStartsEmpty: `tunnel --foreground IFACE` creates the
// interface empty, with its socket, tells systemd it is ready (as
// pipeguard-tunnel@.service runs it), and SIGTERM or SIGINT stops it
// within 2 s, exit 0, interface and socket gone.
func TestTunnelStartsEmpty(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		sd := sdnotifytest.Listen(t)
		p := spawnEnv(t, n, b, append(tunnelEnv(t, n.iface), "NOTIFY_SOCKET="+sd.Path), "tunnel", "--foreground", n.iface)
		p.waitSocket(t, n.iface)
		sd.WaitFor(t, "READY", "1", 5*time.Second, nil)
		checkEmpty(t, n)
		code, took := p.stop(t, sig, 5*time.Second)
		sd.WaitFor(t, "STOPPING", "1", time.Second, nil)
		t.Logf("%v: exit %d in %v", sig, code, took.Round(time.Millisecond))
		if code != 0 || took > 2*time.Second {
			t.Fatalf("%v: exit %d after %v; want 0 within 2 s", sig, code, took)
		}
		assertGone(t, n)
	}
}

// TestTunnelDetaches: `pipeguard-go IFACE`, as wg-quick runs it, returns
// 0 only once the interface and its socket exist, and the tunnel runs on
// in the background; `ip link del IFACE` (wg-quick down) stops it within
// 3 s, its socket gone.
func TestTunnelDetaches(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	t.Cleanup(func() {
		if pid := daemonOf(n.iface); pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.Remove(uapi.SocketPath(n.iface))
	})
	cmd := n.ns.Command(context.Background(), wireguardGo(t, b), n.iface)
	cmd.Env = append(os.Environ(), tunnelEnv(t, n.iface)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pipeguard-go %s: %v\n%s", n.iface, err, out)
	}
	// At once, with no waiting: the parent exits only after these exist.
	c, err := net.Dial("unix", uapi.SocketPath(n.iface))
	if err != nil {
		t.Fatalf("no UAPI socket when pipeguard-go returned: %v", err)
	}
	c.Close()
	checkEmpty(t, n)
	if len(out) != 0 {
		t.Errorf("the detached tunnel wrote to the caller's output:\n%s", out)
	}
	pid := daemonOf(n.iface)
	if pid == 0 {
		t.Fatal("no background process serves the interface")
	}
	n.ns.MustRun(t, "ip", "link", "del", n.iface)
	took := waitGone(t, pid, 3*time.Second)
	t.Logf("stopped %v after ip link del", took.Round(time.Millisecond))
	assertGone(t, n)
}

// TestTunnelDetachFailure: when the tunnel cannot start (here the name is
// a veth's already), the detaching command exits non-zero with one line
// that says why, and leaves nothing running.
func TestTunnelDetachFailure(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	n.ns.MustRun(t, "ip", "link", "add", n.iface, "type", "veth", "peer", "name", n.iface+"p")
	cmd := n.ns.Command(context.Background(), wireguardGo(t, b), n.iface)
	cmd.Env = append(os.Environ(), tunnelEnv(t, n.iface)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("pipeguard-go on a taken name: %v, want a non-zero exit", err)
	}
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "creating TUN device "+n.iface) || stdout.Len() != 0 {
		t.Fatalf("want one line naming the failure; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	t.Logf("exit %d: %s", ee.ExitCode(), lines[0])
	if pid := daemonOf(n.iface); pid != 0 {
		t.Errorf("process %d left running", pid)
	}
	if _, err := os.Stat(uapi.SocketPath(n.iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind (%v)", err)
	}
}

// TestWireguardGoCommandLine: under the pipeguard-go name the binary
// takes wireguard-go's command line: --version, -f/--foreground IFACE
// (and WG_PROCESS_FOREGROUND=1) in the foreground, a usage line and a
// non-zero exit for anything else.
func TestWireguardGoCommandLine(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	wggo := wireguardGo(t, b)
	out, err := exec.Command(wggo, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "pipeguard-go ") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("pipeguard-go --version: %v, %q", err, out)
	}
	for _, args := range [][]string{nil, {"-x", "wg0"}, {"a", "b"}, {"--foreground"}} {
		out, err := exec.Command(wggo, args...).CombinedOutput()
		if err == nil || !strings.HasPrefix(string(out), "Usage: pipeguard-go [-f/--foreground] INTERFACE-NAME") {
			t.Errorf("pipeguard-go %q: %v, %q; want the usage and a non-zero exit", args, err, out)
		}
	}
	n := loneNode(t)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	for _, run := range []struct {
		args []string
		env  []string
	}{
		{[]string{"-f", n.iface}, nil},
		{[]string{"--foreground", n.iface}, nil},
		{[]string{n.iface}, []string{"WG_PROCESS_FOREGROUND=1"}},
	} {
		p := &proc{name: "pipeguard-go " + strings.Join(run.args, " "), out: &syncBuffer{}, exit: make(chan error, 1)}
		p.cmd = n.ns.Command(context.Background(), wggo, run.args...)
		p.cmd.Env = append(append(os.Environ(), tunnelEnv(t, n.iface)...), run.env...)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.exit <- p.cmd.Wait() }()
		p.waitSocket(t, n.iface) // fails if it exited: it must stay
		// The line may follow the socket by a moment.
		waitOutput(t, p, "tunnel running, empty")
		if code, _ := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
			t.Fatalf("%s: exit %d after SIGTERM", p.name, code)
		}
		assertGone(t, n)
	}
}
