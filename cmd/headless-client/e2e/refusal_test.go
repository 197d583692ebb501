package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"pipeguard/cmd/internal/netnstest"
)

// TestRefusals checks each reason the client refuses to start: exit code
// 1, a last line on stderr naming the problem, and nothing configured in
// the namespace afterwards.
func TestRefusals(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv (util-linux) is needed to drop CAP_NET_ADMIN")
	}
	for _, tc := range []struct {
		name   string
		edit   func(conf string) string // changes the valid config text
		mode   os.FileMode
		owner  int      // uid to chown the file to; 0 keeps root
		prefix []string // runs the client through this command
		flags  []string // extra flags after standalone's own
		want   []string // in the last line of stderr
	}{
		{name: "group-readable", mode: 0o640, want: []string{"readable or writable by group or others", "chmod 600"}},
		{name: "world-writable", mode: 0o602, want: []string{"mode 0602", "chmod 600"}},
		{name: "other owner", owner: 65534, want: []string{"owned by another user", "uid 65534"}},
		{name: "unknown key", edit: func(c string) string { return strings.Replace(c, "[Peer]", "Tabel = off\n[Peer]", 1) }, want: []string{"pg.conf:", "unknown key: Tabel"}},
		{name: "bad key", edit: func(c string) string { return strings.Replace(c, "PublicKey = ", "PublicKey = x", 1) }, want: []string{"pg.conf:", "bad key: PublicKey"}},
		{name: "bad CIDR", edit: func(c string) string { return strings.Replace(c, "/32", "/33", 1) }, want: []string{"pg.conf:", "bad address or CIDR"}},
		{name: "bad endpoint", edit: func(c string) string { return strings.Replace(c, ":51820", ":0", 1) }, want: []string{"pg.conf:", "bad endpoint"}},
		{name: "route loop", edit: func(c string) string {
			// The endpoint's own subnet; 0.0.0.0/0 would be a full tunnel.
			return strings.Replace(c, "AllowedIPs = 10.100.0.2/32", "AllowedIPs = 10.99.0.0/24", 1)
		}, want: []string{"contains the endpoint"}},
		{name: "queue too small", flags: []string{"--queue-capacity", "16"}, want: []string{"--queue-capacity must be 0 or at least 64"}},
		{name: "metrics address not local", flags: []string{"--metrics-addr", "192.0.2.1:9586"}, want: []string{"metrics endpoint 192.0.2.1:9586"}},
		{name: "no CAP_NET_ADMIN", prefix: []string{setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin"}, want: []string{"missing CAP_NET_ADMIN", "setcap cap_net_admin+eip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.writeConfig(t, z.asPeer(true))
			if tc.edit != nil {
				text, _ := os.ReadFile(a.conf)
				os.WriteFile(a.conf, []byte(tc.edit(string(text))), 0o600)
			}
			if tc.mode != 0 {
				os.Chmod(a.conf, tc.mode)
			}
			if tc.owner != 0 {
				os.Chown(a.conf, tc.owner, tc.owner)
			}
			args := append(tc.prefix, b.client, "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir())
			args = append(args, tc.flags...)
			assertRefused(t, a.ns, args, tc.want...)
			assertGone(t, a)
		})
	}
}

// assertRefused runs argv in ns (for at most 10 s) and fails t unless it
// exits with status 1 and the last line of its stderr holds each of want.
func assertRefused(t *testing.T, ns *netnstest.NS, argv []string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
	}
	last := lastLine(stderr.String())
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("last stderr line %q lacks %q", last, w)
		}
	}
}
