package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
)

// pipeguardGo makes the multi-call name next to the built client, as
// `make install` does, and returns its directory (for PATH).
func pipeguardGo(t *testing.T, b bins) string {
	t.Helper()
	dir := filepath.Dir(b.client)
	link := filepath.Join(dir, "pipeguard-go")
	if err := os.Symlink(filepath.Base(b.client), link); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	return dir
}

// wgQuick runs wg-quick in ns with the userspace implementation
// pipeguard-go from dir, and returns its exit code, its output and the
// file that holds it. The output goes to a file, not a pipe: the tunnel
// it starts detaches and must not hold the test's pipe open. With
// LOG_LEVEL set the detached tunnel keeps logging there, as wireguard-go
// does.
func wgQuick(t *testing.T, ns *netnstest.NS, dir, action, conf string) (int, string, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "wg-quick-*.out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, "wg-quick", action, conf)
	// The tunnel's state directory is the namespace's, not the host's
	// default (a root run's /var/lib/pipeguard-root), so the test leaves
	// nothing behind; the same one for up and down.
	state := filepath.Join(os.TempDir(), "pipeguard-e2e-"+ns.Name)
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	cmd.Env = append(os.Environ(), "WG_QUICK_USERSPACE_IMPLEMENTATION=pipeguard-go", "PATH="+dir+":"+os.Getenv("PATH"), "LOG_LEVEL=info", "PIPEGUARD_STATE_DIR="+state)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out), f.Name()
	case err != nil:
		t.Fatalf("wg-quick %s: %v\n%s", action, err, out)
	}
	return 0, string(out), f.Name()
}

// tunnelProcess finds the running client (the binary exe) serving iface,
// or 0.
func tunnelProcess(t *testing.T, exe, iface string) int {
	t.Helper()
	want, err := filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if got, err := os.Readlink(p + "/exe"); err != nil || got != want {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if arg == iface {
				return pid
			}
		}
	}
	return 0
}

// TestWGQuickFullTunnel: `wg-quick up` of a
// full-tunnel config with no MTU line, with pipeguard-go as its
// userspace implementation, against a wireguard-go peer over a
// 1500-byte veth path. wg-quick sets the MTU to 1420, which the tunnel
// sets back to 1280; everything else is wg-quick's own doing over the
// UAPI socket. `wg-quick down` removes the interface, which stops the
// process, and within 3 s nothing is left.
func TestWGQuickFullTunnel(t *testing.T) {
	b := binaries(t)
	if _, err := exec.LookPath("wg-quick"); err != nil {
		t.Fatal("wg-quick (wireguard-tools) is needed; scripts/setup.sh installs it")
	}
	if _, err := os.Stat("/sys/module/wireguard"); err == nil {
		// wg-quick would use the kernel's WireGuard and never start
		// pipeguard-go: this test would show nothing about PipeGuard.
		t.Fatal("the wireguard kernel module is loaded; wg-quick would not use pipeguard-go (rmmod wireguard)")
	}
	dir := pipeguardGo(t, b)
	t.Parallel()
	a, z := newNodes(t)
	a.iface = netnstest.UniqueName("pq")
	giveFarAddresses(t, z.ns)
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)
	before := policyState(t, a.ns)

	// wg-quick's own format: the file is named after the interface; no
	// MTU and no DNS line (so it never touches the host's resolver).
	conf := filepath.Join(t.TempDir(), a.iface+".conf")
	text := fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = %s, %s\nListenPort = %d\n\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = 0.0.0.0/0, ::/0\n",
		a.key, a.inner[0], a.inner[1], a.port, z.key.Public(), netip.AddrPortFrom(z.outer, z.port))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pid := tunnelProcess(t, b.client, a.iface); pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.Remove(uapi.SocketPath(a.iface))
	})

	code, out, upLog := wgQuick(t, a.ns, dir, "up", conf)
	t.Logf("wg-quick up (exit %d):\n%s", code, out)
	if code != 0 {
		t.Fatalf("wg-quick up exited %d", code)
	}
	if !strings.Contains(out, "pipeguard-go "+a.iface) {
		t.Fatalf("wg-quick did not start pipeguard-go")
	}
	pid := tunnelProcess(t, b.client, a.iface)
	if pid == 0 {
		t.Fatal("no pipeguard-go process serves the interface after wg-quick up")
	}
	if got := strings.TrimSpace(wg(t, "show", a.iface, "fwmark")); got != "0xca6c" {
		t.Errorf("wg show %s fwmark: %q, want 0xca6c", a.iface, got)
	}
	// wg-quick set 1420 (1500 - 80); the tunnel holds 1280.
	waitFor(t, func() bool { return strings.Contains(a.ns.MustRun(t, "ip", "link", "show", a.iface), " mtu 1280 ") })

	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(a.ns, dst); !ok {
			t.Fatalf("ping %s through wg-quick's full tunnel:\n%s\n%s", dst, out, policyState(t, a.ns))
		}
	}
	transferTo(t, a, z.ns, netip.AddrPortFrom(farV4, 5201), 10<<20)
	transferTo(t, a, z.ns, netip.AddrPortFrom(farV6, 5202), 10<<20)
	// 1400 bytes with DF: answered, or an error ping prints; never
	// silence.
	for _, c := range []struct {
		dst  netip.Addr
		size string
	}{{farV4, "1372"}, {farV6, "1352"}} {
		out, ok := pingOut(a.ns, c.dst, "-M", "do", "-s", c.size, "-c", "1", "-w", "3")
		t.Logf("ping -M do -s %s %s (ok %v):\n%s", c.size, c.dst, ok, out)
		if !ok && !strings.Contains(strings.ToLower(out), "message too long") {
			t.Errorf("1400-byte DF ping to %s was silently lost:\n%s", c.dst, out)
		}
	}

	downAt := time.Now()
	code, out, _ = wgQuick(t, a.ns, dir, "down", conf)
	t.Logf("wg-quick down (exit %d):\n%s", code, out)
	if code != 0 {
		t.Errorf("wg-quick down exited %d", code)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("pipeguard-go (pid %d) still runs 3 s after wg-quick down", pid)
	} else {
		t.Logf("pipeguard-go gone %v after wg-quick down began", time.Since(downAt).Round(time.Millisecond))
	}
	assertGone(t, a)
	// The tunnel's own log (LOG_LEVEL keeps it, after wg-quick's lines):
	// one warning for the MTU wg-quick set.
	tunnelLog, _ := os.ReadFile(upLog)
	if n := strings.Count(string(tunnelLog), "interface MTU 1420 set back to 1280"); n != 1 {
		t.Errorf("%d MTU warnings in the tunnel's log, want 1:\n%s", n, tunnelLog)
	}
	if got := policyState(t, a.ns); got != before {
		t.Errorf("policy routing after wg-quick down:\n%s\nwant as before:\n%s", got, before)
	}
}
