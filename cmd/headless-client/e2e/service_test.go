package e2e

import (
	"fmt"
	"io"
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

// TestSystemdNotify runs the client as systemd runs a Type=notify service
// with WatchdogSec=1s: NOTIFY_SOCKET and WATCHDOG_USEC set, a listener in
// the test playing systemd. READY=1 comes once the interface exists and
// the UAPI socket answers; STATUS= tells the peer's handshake once there
// was one; WATCHDOG=1 comes every half second while the tunnel works;
// SIGHUP brings RELOADING=1 (with MONOTONIC_USEC) and then READY=1;
// SIGTERM brings STOPPING=1, and the client exits 0 leaving nothing.
func TestSystemdNotify(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	z.startWGPeer(t, b)

	sd := sdnotifytest.Listen(t)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(a.iface)) })
	p := start(t, a.ns, "client "+a.iface, b.client,
		[]string{"NOTIFY_SOCKET=" + sd.Path, "WATCHDOG_USEC=1000000", "PIPEGUARD_ID=e2e-notify"},
		"--log-level", "debug", "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir())

	m := sd.WaitFor(t, "READY", "1", 15*time.Second, func(m sdnotifytest.Message) {
		t.Errorf("before READY=1: %v", m.Vars)
	})
	// At READY=1 the interface is up with its address, and wg reaches it.
	if link := a.ns.MustRun(t, "ip", "-o", "addr", "show", "dev", a.iface); !strings.Contains(link, a.inner[0].String()) {
		t.Errorf("at READY=1, %s lacks %s:\n%s", a.iface, a.inner[0], link)
	}
	if show := wg(t, "show", a.iface); !strings.Contains(show, z.key.Public().String()) {
		t.Errorf("at READY=1, wg show lacks the peer:\n%s", show)
	}
	if want := "1 peer, 0 with a handshake in the last 3 min; without a session: " + z.key.Public().String()[:8]; !m.Has("STATUS", want) {
		t.Errorf("READY=1 came with %v, want STATUS=%s", m.Vars, want)
	}

	a.ping(t, z.inner[0].Addr())
	pings := 0
	sd.WaitFor(t, "STATUS", "1 peer, 1 with a handshake in the last 3 min", 5*time.Second, func(m sdnotifytest.Message) {
		if m.Has("WATCHDOG", "1") {
			pings++
		}
	})
	begin := time.Now()
	for pings < 4 {
		if m := sd.Next(t, 3*time.Second); m.Has("WATCHDOG", "1") {
			pings++
		} else if s := m.Vars["STATUS"]; !strings.HasPrefix(s, "1 peer, 1 with a handshake") || strings.Contains(s, "unhealthy") {
			t.Errorf("status while healthy: %v", m.Vars)
		}
	}
	t.Logf("%d watchdog pings, the last ones %v apart on average", pings, time.Since(begin)/3)

	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m = sd.WaitFor(t, "RELOADING", "1", 5*time.Second, nil)
	if _, err := strconv.ParseUint(m.Vars["MONOTONIC_USEC"], 10, 64); err != nil {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %v", m.Vars)
	}
	sd.WaitFor(t, "READY", "1", 5*time.Second, nil)

	code, _ := p.stop(t, syscall.SIGTERM, 2*time.Second)
	sd.WaitFor(t, "STOPPING", "1", time.Second, nil)
	if code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	assertGone(t, a)
}

// unprivilegedUID is the uid (and gid) TestUnprivileged runs the client
// as: one no account uses, so that nothing else owns its files.
const unprivilegedUID = 61234

// TestUnprivileged runs the client as systemd runs the packaged unit: a
// uid other than root, holding CAP_NET_ADMIN as its only capability
// (ambient, bounding set reduced to it, via setpriv), with its config and
// state its own, and its UAPI socket made by root in root's
// /run/wireguard (mode 0600) and passed in as the unit's socket unit
// does: descriptor 3, LISTEN_FDS=1 and LISTEN_PID the client's pid (set
// by the shell that execs into it). /dev/net/tun is given Debian's mode
// 0666 in a private mount namespace (udev's default, which this
// machine's container lacks). The tunnel must come up, pass traffic both
// ways with a wireguard-go peer, and answer root's wg on the socket,
// reads and writes; the service's uid must not be able to replace the
// socket; SIGTERM must remove everything but the socket, which is its
// maker's to remove (systemd's RemoveOnStop=).
func TestUnprivileged(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	for _, tool := range []string{"setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (util-linux) is needed: %v", tool, err)
		}
	}
	a, z := newNodes(t)
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)

	// Everything the uid needs, in a directory it can reach (t.TempDir's
	// parents are root's alone): the binary, its config and its state
	// directory.
	home, err := os.MkdirTemp("", "pipeguard-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	client := filepath.Join(home, "pipeguard-headless-client")
	copyFile(t, b.client, client, 0o755)
	a.conf = filepath.Join(home, "pg.conf")
	a.writeConfig(t, z.asPeer(true))
	state := filepath.Join(home, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{home, a.conf, state} {
		if err := os.Chown(f, unprivilegedUID, unprivilegedUID); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	// The socket unit's part, as root: the socket where wg looks.
	sock := listenAsSocketUnit(t, a.iface)

	uid := strconv.Itoa(unprivilegedUID)
	p := startFiles(t, a.ns, "unprivileged client "+a.iface, []*os.File{sock}, "unshare", nil,
		"--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs -o mode=0755 tmpfs /dev/net && mknod -m 0666 /dev/net/tun c 10 200 &&
			LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=uapi exec "$@"`, "sh",
		"setpriv", "--reuid", uid, "--regid", uid, "--clear-groups",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin",
		client, "--log-level", "debug", "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", state)
	waitLog(t, p, "UAPI socket listening")
	if !strings.Contains(p.out.String(), "passed_in=true") {
		t.Errorf("the client did not serve the passed socket:\n%s", p.out)
	}

	// The process is the client itself (every step above execs), and it
	// holds what the unit grants and no more.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("Uid:\t%[1]s\t%[1]s\t%[1]s\t%[1]s", uid),
		"CapEff:\t0000000000001000", "CapPrm:\t0000000000001000", "CapBnd:\t0000000000001000",
	} {
		if !strings.Contains(string(status), want) {
			t.Errorf("client's /proc status lacks %q:\n%s", want, status)
		}
	}

	a.ping(t, z.inner[0].Addr())
	z.ping(t, a.inner[0].Addr())
	transfer(t, a, z, 5<<20, nil)
	transfer(t, z, a, 5<<20, nil)

	show := wg(t, "show", a.iface)
	for _, want := range []string{"peer: " + z.key.Public().String(), "latest handshake:", "transfer:"} {
		if !strings.Contains(show, want) {
			t.Errorf("root's wg show lacks %q:\n%s", want, show)
		}
	}
	wg(t, "set", a.iface, "peer", z.key.Public().String(), "persistent-keepalive", "25")
	if ka := wg(t, "show", a.iface, "persistent-keepalive"); !strings.Contains(ka, "\t25") {
		t.Errorf("root's wg set did not apply: %q", ka)
	}
	if id, err := os.ReadFile(filepath.Join(state, "config", "pipeguard-id")); err != nil || len(id) == 0 {
		t.Errorf("no device id in the uid's state directory: %v", err)
	}
	// The service's own uid cannot replace its socket, nor any other in
	// root's directory.
	if code, said := runImpostor(t, impostorBinary(t), uapi.SocketPath(a.iface), unprivilegedUID); code != 3 || !strings.Contains(said, "permission denied") {
		t.Errorf("the service uid's impostor: exit %d, %q; want 3, permission denied", code, said)
	}
	if ka := wg(t, "show", a.iface, "persistent-keepalive"); !strings.Contains(ka, "\t25") {
		t.Errorf("after the impostor, root's wg no longer reaches the tunnel: %q", ka)
	}

	code, _ := p.stop(t, syscall.SIGTERM, 2*time.Second)
	if code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if out, err := a.ns.Run("ip", "link", "show", a.iface); err == nil {
		t.Errorf("interface %s left behind:\n%s", a.iface, out)
	}
	if fi, err := os.Lstat(uapi.SocketPath(a.iface)); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("the client removed the socket its maker owns: %v", err)
	}
}

// listenAsSocketUnit does what the units' socket unit does, as root: a
// listening socket at iface's path in root's /run/wireguard, mode 0600,
// removed at the end of the test. It returns it as a file to pass on.
func listenAsSocketUnit(t *testing.T, iface string) *os.File {
	t.Helper()
	path := uapi.SocketPath(iface)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	t.Cleanup(func() { os.Remove(path) })
	f, err := ln.File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitLog waits for a line of p's output holding what, or fails if p
// exits first.
func waitLog(t *testing.T, p *proc, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.out.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within 30 s\n%s", p.name, what, p.out)
		}
		select {
		case err := <-p.exit:
			p.exit <- err
			t.Fatalf("%s exited: %v\n%s", p.name, err, p.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
