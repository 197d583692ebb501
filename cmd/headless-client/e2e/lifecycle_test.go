package e2e

import (
	"bufio"
	"context"
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

// The client's lifecycle end to end: what it does at its open-file limit, when its interface
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

// TestUAPIAtFileLimit: with its open-file limit at 30
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
	stopLeavingNothing(t, p, n)
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

// TestInterfaceDeleted: after `ip link del` the client
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

// TestStopWithIdleHTTPConnection: one idle TCP
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

// TestRefusedReloadChangesNothing: a reload with a
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

// spawn starts the client with args in n's namespace without waiting for
// anything. The process is killed in t.Cleanup if the test did not stop
// it.
func spawn(t *testing.T, n *node, b bins, args ...string) *proc {
	t.Helper()
	return spawnEnv(t, n, b, []string{"PIPEGUARD_ID=e2e-" + n.iface}, args...)
}

// spawnEnv is spawn with env added to the test's environment.
func spawnEnv(t *testing.T, n *node, b bins, env []string, args ...string) *proc {
	t.Helper()
	return start(t, n.ns, "client "+n.iface, b.client, env, args...)
}

// configOpened returns a channel that receives once a process opens the
// file path (inotify IN_OPEN), and stops watching when the test ends.
// The client opens its config only after main has caught its signals,
// so the event marks the end of the window in which no Go program can
// catch a signal (its runtime and package initialisation).
func configOpened(t *testing.T, path string) <-chan struct{} {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	t.Cleanup(func() { f.Close() })
	ch := make(chan struct{}, 1)
	go func() { // returns when f is closed
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}

// killedBy reports whether the process's exit (Wait's error) was death by
// sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// TestEarlySIGHUP: a SIGHUP in
// the first milliseconds (`systemctl reload` racing a start) killed the
// client, usually without a word, because it caught SIGHUP only after
// its log set-up, config load and checks. Now SIGHUP is caught during
// package initialisation (TestSIGHUPCaughtFromInit, TestSIGHUPWindow). In 20 starts through `ip netns exec … standalone`,
// SIGHUPs from 5 ms after the spawn until the client is up, one every
// millisecond, never kill it.
//
// A Go program cannot catch a signal before its runtime and its packages'
// init functions have run (0.1 to 3 ms of CPU, measured), and on a loaded
// machine `ip netns exec` alone may take longer than 5 ms to start the
// client (a SIGHUP then kills ip). So the first SIGHUP goes 5 ms after the
// spawn, but not before the client has opened its config file, which it
// does right after main caught its signals and well before the point
// where the old client began to catch them (after config load, checks
// and device id). TestSIGHUPDuringStartup catches the regression without
// any timing.
func TestEarlySIGHUP(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	const runs = 20
	opened := configOpened(t, n.conf)
	sent, early := 0, 0 // SIGHUPs in all; of them, before the socket was up
	for i := range runs {
		// Forget the opens of the previous run's reloads: wait until
		// none has come for 50 ms.
		for drained := false; !drained; {
			select {
			case <-opened:
			case <-time.After(50 * time.Millisecond):
				drained = true
			}
		}
		begin := time.Now()
		p := spawn(t, n, b, "standalone", "--config", n.conf, "--interface", n.iface, "--state-dir", t.TempDir())
		select {
		case <-opened:
		case err := <-p.exit:
			p.exit <- err
			t.Fatalf("run %d: the client exited before it opened its config: %v", i, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: the client did not open its config within 10 s", i)
		}
		time.Sleep(time.Until(begin.Add(5 * time.Millisecond)))
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				err := <-p.exit
				p.exit <- err
				if killedBy(err, syscall.SIGHUP) {
					t.Fatalf("run %d: the client was killed by a SIGHUP sent %v after it was spawned", i, time.Since(begin).Round(time.Millisecond))
				}
				t.Fatalf("run %d: the client exited at start: %v", i, err)
			}
			sent++
			// Up once its own socket answers (each run's client removes
			// the socket before it exits).
			if c, err := net.Dial("unix", uapi.SocketPath(n.iface)); err == nil {
				c.Close()
				break
			}
			early++
			if time.Now().After(deadline) {
				t.Fatalf("run %d: not up within 10 s", i)
			}
		}
		if code, _ := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
			t.Fatalf("run %d: exit %d after SIGTERM", i, code)
		}
	}
	t.Logf("%d starts, %d SIGHUPs, %d of them while the client was starting", runs, sent, early)
}

// TestSIGHUPDuringStartup is TestEarlySIGHUP without timing. The peer's
// endpoint is a host name, and the namespace's resolver is the test's: it
// holds the client's query, at a point of the start where the client
// used to be still deaf to signals, sends the SIGHUP, and only then
// answers. (The device id file was a FIFO once; the client now refuses
// anything but a regular file there, so that nothing planted can block a
// start.) The client once died of it every time. Now it comes up and
// serves the early SIGHUP as a reload.
func TestSIGHUPDuringStartup(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	queried, release := heldResolver(t, n, netip.MustParseAddr("192.0.2.1"))
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	n.writeConfig(t, config.Peer{PublicKey: k.Public(), Endpoint: "held.pipeguard.test:51820",
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.100.0.2/32")}})
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := spawn(t, n, b, "standalone", "--config", n.conf, "--interface", n.iface, "--state-dir", t.TempDir())
	select {
	case <-queried:
	case err := <-p.exit:
		p.exit <- err
		t.Fatalf("the client exited before its lookup: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no DNS query from the client within 10 s")
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let it be delivered while the client waits
	close(release)
	p.waitSocket(t, n.iface)
	waitFor(t, func() bool { return strings.Contains(p.out.String(), "reloading config (SIGHUP)") })
	stopLeavingNothing(t, p, n)
}

// TestBrokenStderrPipe: the client's
// stdout and stderr go to a pipe whose reader takes one line and goes
// away (`… 2>&1 | head -1`). Its next log lines (a reload) once killed it
// with SIGPIPE (exit 141), leaving its socket behind; now it keeps
// serving, and stops cleanly.
func TestBrokenStderrPipe(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := n.ns.Command(context.Background(), b.client, "standalone", "--config", n.conf, "--interface", n.iface, "--state-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "PIPEGUARD_ID=e2e-"+n.iface)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &proc{name: "client " + n.iface, cmd: cmd, out: &syncBuffer{}, exit: make(chan error, 1)}
	go func() { p.exit <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.exit:
			p.exit <- err
		default:
			cmd.Process.Kill()
			<-p.exit
		}
		os.Remove(uapi.SocketPath(n.iface))
	})
	line, err := bufio.NewReader(r).ReadString('\n') // head -1
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	t.Logf("first line: %s", strings.TrimSpace(line))
	r.Close()
	p.waitSocket(t, n.iface)
	for range 3 { // each reload logs
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("the client is gone: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-p.exit:
		p.exit <- err
		t.Fatalf("the client died with its stderr broken: %v", err)
	default:
	}
	wgShow(t, n, "public-key")
	stopLeavingNothing(t, p, n)
}

// TestSIGTERMDuringStartupLookup: a SIGTERM while the
// client resolves a peer's endpoint name at start-up made it exit 1 with
// "bad endpoint … operation was canceled". Now that is an orderly stop:
// exit 0, "stopped during start-up", nothing left. The namespace's
// resolver is the test's, which takes the query and never answers.
func TestSIGTERMDuringStartupLookup(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	n := loneNode(t)
	asked, _ := heldResolver(t, n, netip.MustParseAddr("192.0.2.1")) // never released
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	n.writeConfig(t, config.Peer{PublicKey: k.Public(), Endpoint: "slow.pipeguard.test:51820",
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.100.0.2/32")}})
	p := spawn(t, n, b, "standalone", "--config", n.conf, "--interface", n.iface, "--state-dir", t.TempDir())
	select {
	case <-asked:
	case err := <-p.exit:
		p.exit <- err
		t.Fatalf("the client exited before its lookup: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no DNS query from the client within 10 s")
	}
	code, took := p.stop(t, syscall.SIGTERM, 5*time.Second)
	if code != 0 || took > 2*time.Second || !strings.Contains(p.out.String(), "stopped during start-up") {
		t.Fatalf("SIGTERM during the start-up lookup: exit %d after %v; want 0, within 2 s, \"stopped during start-up\"", code, took)
	}
	assertGone(t, n)
}

// stopLeavingNothing stops p with SIGTERM, fails t unless it exits 0
// within 5 s, and checks that nothing of n is left.
func stopLeavingNothing(t *testing.T, p *proc, n *node) {
	t.Helper()
	if code, _ := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	assertGone(t, n)
}
