package e2e

import (
	"encoding/json"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/dns/resolvconftest"
	"pipeguard/cmd/headless-client/uapi"
)

// plantedKey stands for a root-only secret (a private key) that a
// planted link points at.
const plantedKey = "8JwawmPLANTEDSECRETPLANTEDSECRETPLANTEDSECR="

// plantedCase is one of the files the review planted, as the pipeguard
// user, in the state (or log) directory that user owns, before root ran
// `standalone --config X --dns-control disabled`.
type plantedCase struct {
	name string
	// plant fills state (and logs) and returns the files outside that
	// must not change.
	plant func(t *testing.T, iface, state, logs, outside string) []string
	logs  bool // run with --log-dir logs
	// ignored is what the run says when the directory is root's: the
	// record refused (and the tunnel up), or the start refused.
	ignored string
}

// plantedCases are the review's five findings.
var plantedCases = []plantedCase{
	{name: "DNS crash-restore record", plant: func(t *testing.T, iface, state, _, outside string) []string {
		victim := writeVictim(t, outside, "victim", "root's own file\n")
		writeJSON(t, filepath.Join(state, "dns", "etc-resolv-conf.json"), map[string]any{
			"path": victim, "original": []byte("pwned\n"), "existed": true, "perm": 0o644,
			"written": []byte("root's own file\n"), "claims": []any{}})
		writeJSON(t, filepath.Join(state, "dns", iface+"@etc-resolv-conf.json"), map[string]any{"mode": "etc-resolv-conf", "interface": iface})
		return []string{victim}
	}, ignored: "refused, nothing restored"},
	{name: "resolvconf record named by a path", plant: func(t *testing.T, iface, state, _, outside string) []string {
		victim := writeVictim(t, outside, "victim", "root's own file\n")
		writeJSON(t, filepath.Join(state, "dns", iface+"@resolvconf.json"), map[string]any{
			"mode": "resolvconf", "interface": iface, "name": "../../../../../../.." + victim})
		return []string{victim}
	}, ignored: "is not interface"},
	{name: "link at the rules file's temporary name", plant: func(t *testing.T, iface, state, _, outside string) []string {
		victim := writeVictim(t, outside, "victim", "root's own file\n")
		for _, name := range []string{"rules." + iface + ".json.new", "rules." + iface + ".json"} {
			if err := os.Symlink(victim, filepath.Join(state, name)); err != nil {
				t.Fatal(err)
			}
		}
		return []string{victim}
	}, ignored: "state file of a previous run refused"},
	{name: "device id link to a root-only key", plant: func(t *testing.T, _, state, _, outside string) []string {
		key := writeVictim(t, outside, "private.key", plantedKey+"\n")
		os.Chmod(key, 0o600)
		if err := os.Symlink(key, filepath.Join(state, "config", "pipeguard-id")); err != nil {
			t.Fatal(err)
		}
		return []string{key}
	}, ignored: "pipeguard-id is a symbolic link"},
	{name: "link at the log file", logs: true, plant: func(t *testing.T, iface, _, logs, outside string) []string {
		victim := writeVictim(t, outside, "victim", "root's own file\n")
		if err := os.Symlink(victim, filepath.Join(logs, "pipeguard-"+iface+".log")); err != nil {
			t.Fatal(err)
		}
		return []string{victim}
	}, ignored: ".log is a symbolic link"},
}

func writeVictim(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// plantedDirs makes a state directory (with config/ and dns/) and a log
// directory, files outside both, and a resolvconf that only records its
// calls, first in PATH.
func plantedDirs(t *testing.T) (state, logs, outside string, fake *resolvconftest.Fake, env []string) {
	t.Helper()
	base := t.TempDir()
	state, logs, outside = filepath.Join(base, "state"), filepath.Join(base, "logs"), filepath.Join(base, "outside")
	for _, d := range []string{state, filepath.Join(state, "config"), filepath.Join(state, "dns"), logs, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fake = resolvconftest.NewFake(t)
	env = []string{"PATH=" + filepath.Dir(fake.Path) + ":" + os.Getenv("PATH")}
	return state, logs, outside, fake, env
}

// chownTree gives dir and everything in it (links themselves) to uid.
func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot reads files, links not followed as they were planted.
func snapshot(t *testing.T, files []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[f] = string(b)
	}
	return m
}

// TestPlantedStateRefused replays the review as root: each file it
// planted, in a state (or log) directory that another uid (the service
// user) owns, then `standalone --config X --dns-control disabled`. The
// start is refused with one line that names the directory; no file
// outside changes, resolvconf is never called, no interface is made, and
// neither the config's key nor the planted link's secret is printed.
func TestPlantedStateRefused(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	for _, tc := range plantedCases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newNodes(t)
			a.writeConfig(t)
			state, logs, outside, fake, env := plantedDirs(t)
			files := tc.plant(t, a.iface, state, logs, outside)
			before := snapshot(t, files)
			chownTree(t, state, serviceUID)
			chownTree(t, logs, serviceUID)
			args := []string{"standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", state, "--dns-control", "disabled"}
			dir := state
			if tc.logs {
				args = append(args, "--log-dir", logs)
				chownTree(t, state, 0) // only the log directory is the other uid's
				dir = logs
			}
			code, stdout, stderr := runOnce(t, b, a, env, args...)
			msg := strings.TrimSpace(stderr)
			if code != 1 || strings.Contains(msg, "\n") || !strings.Contains(msg, dir) || !strings.Contains(msg, "belongs to uid 64000") {
				t.Errorf("exit %d, stderr:\n%s\nwant 1 and one line naming %s and its owner", code, stderr, dir)
			}
			assertNothingChanged(t, a, before, fake, stdout+stderr)
		})
	}
}

// TestPlantedStateIgnored: the same files, but in directories that are
// root's (as if an admin had taken the directory back with the files
// still in it). A record or state file is refused (it must be the
// interface's own, for the mode's own file, with a resolvconf name that is
// the interface's) and the tunnel starts; a link where the client opens a
// file refuses the start. Either way nothing outside changes.
func TestPlantedStateIgnored(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	for _, tc := range plantedCases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newNodes(t)
			a.writeConfig(t)
			state, logs, outside, fake, env := plantedDirs(t)
			files := tc.plant(t, a.iface, state, logs, outside)
			before := snapshot(t, files)
			args := []string{"--log-level", "debug", "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", state, "--dns-control", "disabled"}
			if tc.logs {
				args = append(args, "--log-dir", logs)
			}
			t.Cleanup(func() { os.Remove(uapi.SocketPath(a.iface)) })
			p := start(t, a.ns, "client "+a.iface, b.client, append(env, "PIPEGUARD_ID="), args...)
			refused := false
			deadline := time.Now().Add(30 * time.Second)
			for !refused && time.Now().Before(deadline) {
				select {
				case err := <-p.exit:
					p.exit <- err
					refused = true
				case <-time.After(50 * time.Millisecond):
					refused = socketAnswers(a.iface)
				}
			}
			if socketAnswers(a.iface) {
				p.stop(t, syscall.SIGTERM, 5*time.Second)
			}
			if !strings.Contains(p.out.String(), tc.ignored) {
				t.Errorf("the run does not say %q:\n%s", tc.ignored, p.out)
			}
			assertNothingChanged(t, a, before, fake, p.out.String())
		})
	}
}

// assertNothingChanged checks what a run must leave alone: the files
// outside, resolvconf, the interface, and the secrets out of its output.
func assertNothingChanged(t *testing.T, a *node, before map[string]string, fake *resolvconftest.Fake, output string) {
	t.Helper()
	if after := snapshot(t, slices.Collect(maps.Keys(before))); !maps.Equal(before, after) {
		t.Errorf("a file outside the directory changed:\nbefore %q\nafter  %q", before, after)
	}
	if calls := fake.Calls(t); calls != "" {
		t.Errorf("resolvconf was called:\n%s", calls)
	}
	if out, err := a.ns.Run("ip", "link", "show", a.iface); err == nil && !strings.Contains(output, "tunnel running") {
		t.Errorf("interface %s made by a refused start:\n%s", a.iface, out)
	}
	for _, secret := range []string{"PLANTEDSECRET", a.key.String()} {
		if strings.Contains(output, secret) {
			t.Errorf("the output holds a secret (%.12s…):\n%s", secret, output)
		}
	}
}

// socketAnswers reports whether iface's UAPI socket accepts a connection.
func socketAnswers(iface string) bool {
	c, err := net.Dial("unix", uapi.SocketPath(iface))
	if err == nil {
		c.Close()
	}
	return err == nil
}
