package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
)

// runOnce runs the client once in n's namespace with a clean environment
// (no PIPEGUARD_ID, LOG_DIR or state directory of the caller's) plus env,
// and returns its exit code, stdout and stderr.
func runOnce(t *testing.T, b bins, n *node, env []string, args ...string) (int, string, string) {
	t.Helper()
	return runVia(t, n, env, append([]string{b.client}, args...)...)
}

// runVia is runOnce for a command line of its own (the client behind
// another program, such as setpriv).
func runVia(t *testing.T, n *node, env []string, argv ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := n.ns.Command(ctx, argv[0], argv[1:]...)
	for _, e := range os.Environ() {
		switch k, _, _ := strings.Cut(e, "="); k {
		case "PIPEGUARD_ID", "LOG_DIR", "PIPEGUARD_STATE_DIR", "PIPEGUARD_CONFIG", "DBUS_SYSTEM_BUS_ADDRESS":
		default:
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// links lists the namespace's interfaces by name.
func links(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	// stdout only: ip may warn on stderr ("Peer netns reference is
	// invalid.") about the veth's far end.
	out, err := ns.Command(context.Background(), "ip", "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link in %s: %v", ns.Name, err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return strings.Join(names, " ")
}

// assertCreatedNothing checks the promise of --check and of a refused
// start: no interface (the namespace has the links it had), no UAPI
// socket, and no state or log directory (which did not exist before).
func assertCreatedNothing(t *testing.T, n *node, linksBefore, stateDir, logDir string) {
	t.Helper()
	if got := links(t, n.ns); got != linksBefore {
		t.Errorf("links now %q, before %q", got, linksBefore)
	}
	if _, err := os.Stat(uapi.SocketPath(n.iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UAPI socket %s exists (%v)", uapi.SocketPath(n.iface), err)
	}
	for _, dir := range []string{stateDir, logDir} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			var made []string
			filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error { made = append(made, p); return nil })
			t.Errorf("created %v", made)
		}
	}
}

// TestCheck: `standalone --check` exits 0
// with one line on a good config; exit 1 with the reason on a bad peer
// key and on a world-readable file; and no run leaves an interface,
// socket or file behind. Every refusal is also run as a real start,
// which must refuse with the same line and create nothing either: the
// two share one set of checks. (Before the fix a refused start had
// already made the log file and, for a refusal after the config, the
// device id.)
func TestCheck(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	// A start that went ahead by mistake is killed after 15 s and cannot
	// remove its socket.
	t.Cleanup(func() { os.Remove(uapi.SocketPath(a.iface)) })
	before := links(t, a.ns)
	a.ns.SettleIPv6(t)
	routesBefore := a.ns.MustRun(t, "ip", "route", "show", "table", "all")

	a.writeConfig(t, z.asPeer(true))
	state, logs := filepath.Join(t.TempDir(), "state"), filepath.Join(t.TempDir(), "logs")
	flags := []string{"standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", state, "--log-dir", logs}
	code, stdout, stderr := runOnce(t, b, a, nil, append(flags, "--check")...)
	if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, "ready to start "+a.iface) || stderr != "" {
		t.Errorf("good config: exit %d, stdout %q, stderr %q; want 0 and one line", code, stdout, stderr)
	}
	t.Logf("--check: %s", strings.TrimSpace(stdout))
	assertCreatedNothing(t, a, before, state, logs)

	// A UDP socket on the listen port, for one of the refusals.
	var held net.PacketConn
	t.Cleanup(func() {
		if held != nil {
			held.Close()
		}
	})
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T)       // before the runs; the config is good
		edit   func(conf string) string // changes the config text
		env    []string
		flags  []string
		prefix []string // runs the client through this command
		want   []string // in the last line of stderr
	}{
		{name: "bad peer key", edit: func(c string) string { return strings.Replace(c, "PublicKey = ", "PublicKey = x", 1) },
			want: []string{"pg.conf:", "bad key: PublicKey"}},
		{name: "low-order peer key", edit: func(c string) string {
			i := strings.Index(c, "PublicKey = ")
			j := i + strings.Index(c[i:], "\n")
			return c[:i] + "PublicKey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + c[j:]
		}, want: []string{"low-order point"}},
		{name: "world-readable", setup: func(t *testing.T) { os.Chmod(a.conf, 0o644) }, want: []string{"mode 0644", "chmod 600"}},
		{name: "route loop", edit: func(c string) string {
			// The peer's endpoint, 10.99.0.2, inside a main-table route.
			return strings.Replace(c, "AllowedIPs = 10.100.0.2/32", "AllowedIPs = 10.99.0.0/24", 1)
		}, want: []string{"contains the endpoint"}},
		{name: "route conflict", setup: func(t *testing.T) {
			// A route another interface has for a
			// prefix of AllowedIPs.
			a.ns.MustRun(t, "ip", "route", "add", "10.100.0.2/32", "via", z.outer.String())
			t.Cleanup(func() { a.ns.Run("ip", "route", "del", "10.100.0.2/32") })
		}, want: []string{"AllowedIPs 10.100.0.2/32", "is already there", "leave unencrypted"}},
		{name: "interface name", flags: []string{"--interface", "no/slash"}, want: []string{"bad interface name"}},
		{name: "UDP port in use", setup: func(t *testing.T) {
			if err := a.ns.Do(func() (err error) { held, err = net.ListenPacket("udp", ":51820"); return err }); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"UDP port 51820", "in use"}},
		{name: "metrics address not local", flags: []string{"--metrics-addr", "192.0.2.1:9586"}, want: []string{"metrics endpoint 192.0.2.1:9586", "not an address of this host"}},
		{name: "no CAP_NET_ADMIN", prefix: []string{"setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"},
			want: []string{"missing CAP_NET_ADMIN"}},
		{name: "resolvconf missing", edit: withDNS, env: []string{"PATH=/nonexistent"}, flags: []string{"--dns-control", "resolvconf"},
			want: []string{"no resolvconf program"}},
		{name: "systemd-resolved not running", edit: withDNS, env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus"},
			flags: []string{"--dns-control", "systemd-resolved"}, want: []string{"systemd-resolved is not running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.writeConfig(t, z.asPeer(true))
			if tc.edit != nil {
				text, _ := os.ReadFile(a.conf)
				os.WriteFile(a.conf, []byte(tc.edit(string(text))), 0o600)
			}
			if tc.setup != nil {
				tc.setup(t)
			}
			defer func() {
				if held != nil {
					held.Close()
					held = nil
				}
			}()
			var lines []string
			for _, mode := range []string{"--check", "start"} {
				args := append(append([]string(nil), flags...), tc.flags...)
				if mode == "--check" {
					args = append(args, "--check")
				}
				argv := append(append(append([]string(nil), tc.prefix...), b.client), args...)
				code, stdout, stderr := runVia(t, a, tc.env, argv...)
				last := lastLine(stderr)
				if code != 1 || stdout != "" {
					t.Errorf("%s: exit %d, stdout %q; want 1 and nothing; stderr:\n%s", mode, code, stdout, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(last, w) {
						t.Errorf("%s: last stderr line %q lacks %q", mode, last, w)
					}
				}
				lines = append(lines, last)
				assertCreatedNothing(t, a, before, state, logs)
			}
			if tc.name != "route conflict" {
				if now := a.ns.MustRun(t, "ip", "route", "show", "table", "all"); now != routesBefore {
					t.Errorf("routes now\n%s\nbefore\n%s", now, routesBefore)
				}
			}
			if lines[0] != lines[1] {
				t.Errorf("--check and start refuse differently:\n%s\n%s", lines[0], lines[1])
			}
		})
	}
}

// withDNS adds a DNS line to a config text.
func withDNS(c string) string {
	return strings.Replace(c, "[Peer]", "DNS = 10.100.0.53\n\n[Peer]", 1)
}

// TestCheckDoesNotDisturbARunningTunnel: --check of a config whose
// tunnel runs says the interface exists, and leaves the tunnel as it is.
func TestCheckDoesNotDisturbARunningTunnel(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	pa, pz := a.startClient(t, b), z.startClient(t, b)
	code, _, stderr := runOnce(t, b, a, nil, "standalone", "--check", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir())
	if code != 1 || !strings.Contains(lastLine(stderr), "interface "+a.iface+" already exists") {
		t.Errorf("exit %d, %q; want 1 and the interface named", code, lastLine(stderr))
	}
	a.ping(t, z.inner[0].Addr())
	stopAndCheck(t, pa, a)
	stopAndCheck(t, pz, z)
}
