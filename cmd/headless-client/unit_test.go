package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// units are the systemd service units the package installs; sockets
// are their socket units, in the same order.
var (
	units   = []string{"pipeguard-headless-client@.service", "pipeguard-tunnel@.service"}
	sockets = []string{"pipeguard-headless-client@.socket", "pipeguard-tunnel@.socket"}
)

// tmpfilesConf is the tmpfiles.d file the package installs.
const tmpfilesConf = "pipeguard-tmpfiles.conf"

// maxExposure is the most `systemd-analyze security` may score a unit.
const maxExposure = 2.0

// unitSettings parses a unit file into section+key → values, in order.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	section := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not Key=Value", path, line)
			}
			settings[section+k] = append(settings[section+k], v)
		}
	}
	return settings
}

// TestSystemdUnits checks both units against what the client expects of
// its deployment: its command, notify and watchdog, the pipeguard user
// with CAP_NET_ADMIN as its only capability, its UAPI socket made by root
// in root's /run/wireguard by a socket unit (never a RuntimeDirectory=,
// which would give /run/wireguard to the pipeguard user), and the same
// hardening in both.
func TestSystemdUnits(t *testing.T) {
	common := map[string]string{
		"[Service]Type":                  "notify",
		"[Service]NotifyAccess":          "main",
		"[Service]WatchdogSec":           "30s",
		"[Service]Restart":               "on-failure",
		"[Service]User":                  "pipeguard",
		"[Service]AmbientCapabilities":   "CAP_NET_ADMIN",
		"[Service]CapabilityBoundingSet": "CAP_NET_ADMIN",
		"[Service]NoNewPrivileges":       "yes",
		"[Service]DeviceAllow":           "/dev/net/tun rw",
		"[Service]StateDirectory":        "pipeguard",
		"[Service]ProtectSystem":         "strict",
		"[Service]ProtectProc":           "invisible",
		"[Service]ProcSubset":            "pid",
		"[Service]PrivateMounts":         "yes",
		// Real-time scheduling comes from the unit, set before
		// RestrictRealtime= applies (package cpusched).
		"[Service]CPUSchedulingPolicy":   "rr",
		"[Service]CPUSchedulingPriority": "1",
		"[Service]RestrictRealtime":      "yes",
		"[Install]WantedBy":              "multi-user.target",
	}
	perUnit := map[string]map[string]string{
		units[0]: {
			"[Service]ExecStart":  "/usr/bin/pipeguard-headless-client standalone --config /etc/pipeguard/%i.conf",
			"[Service]ExecReload": "/bin/kill -HUP $MAINPID",
			// A full tunnel that failed closed: routing restored after a
			// stop, kept after a crash for the restart.
			"[Service]ExecStopPost": "/usr/bin/pipeguard-headless-client cleanup --keep-after-crash %i",
			"[Unit]Requires":        "pipeguard-headless-client@%i.socket",
		},
		units[1]: {
			"[Service]ExecStart": "/usr/bin/pipeguard-headless-client tunnel --foreground %i",
			"[Unit]Requires":     "pipeguard-tunnel@%i.socket",
		},
	}
	hardening := map[string]map[string][]string{}
	for _, unit := range units {
		s := unitSettings(t, unit)
		want := maps.Clone(common)
		maps.Copy(want, perUnit[unit])
		for key, v := range want {
			if got := s[key]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s = %q, want exactly %q", unit, key, got, v)
			}
		}
		if got, want := s["[Service]SystemCallFilter"], []string{"@system-service", "~@privileged @resources"}; !slices.Equal(got, want) {
			t.Errorf("%s: SystemCallFilter = %q, want %q", unit, got, want)
		}
		if got := s["[Unit]After"]; !slices.Contains(got, perUnit[unit]["[Unit]Requires"]) {
			t.Errorf("%s: After = %q, want its socket among them", unit, got)
		}
		for k := range s {
			if strings.HasPrefix(k, "[Service]RuntimeDirectory") {
				t.Errorf("%s: %s would give /run/wireguard to the service's user", unit, k)
			}
		}
		h := map[string][]string{}
		for k, v := range s {
			if strings.HasPrefix(k, "[Service]") && k != "[Service]ExecStart" && k != "[Service]ExecReload" && k != "[Service]ExecStopPost" {
				h[k] = v
			}
		}
		hardening[unit] = h
	}
	if !maps.EqualFunc(hardening[units[0]], hardening[units[1]], slices.Equal) {
		t.Errorf("the units' [Service] settings differ beyond their commands:\n%v\n%v", hardening[units[0]], hardening[units[1]])
	}
}

// TestSocketUnits: each service's socket is root's, 0600, at the path
// wg(8) looks in, in a directory made 0755; it lives and goes with its
// service, file and all.
func TestSocketUnits(t *testing.T) {
	for i, sock := range sockets {
		s := unitSettings(t, sock)
		service := strings.Replace(units[i], "@.", "@%i.", 1)
		for key, v := range map[string]string{
			"[Unit]BindsTo":         service,
			"[Socket]ListenStream":  "/run/wireguard/%i.sock",
			"[Socket]SocketUser":    "root",
			"[Socket]SocketGroup":   "root",
			"[Socket]SocketMode":    "0600",
			"[Socket]DirectoryMode": "0755",
			"[Socket]RemoveOnStop":  "yes",
		} {
			if got := s[key]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s = %q, want exactly %q", sock, key, got, v)
			}
		}
		if _, ok := s["[Socket]Accept"]; ok {
			t.Errorf("%s: Accept= set; the service takes the listening socket itself", sock)
		}
		if _, ok := s["[Install]WantedBy"]; ok {
			t.Errorf("%s: installable on its own; its service pulls it in", sock)
		}
	}
}

// TestTmpfiles: the package's tmpfiles.d line makes /run/wireguard
// root's, mode 0755, and takes it back from another uid that has it (as
// earlier units' RuntimeDirectory= gave it to the pipeguard user), here
// under a root of the test's own.
func TestTmpfiles(t *testing.T) {
	requireRoot(t)
	tool, err := exec.LookPath("systemd-tmpfiles")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-tmpfiles (systemd) is not installed; scripts/setup.sh installs it")
		}
		t.Skip("systemd-tmpfiles not installed")
	}
	conf, err := filepath.Abs(tmpfilesConf)
	if err != nil {
		t.Fatal(err)
	}
	for _, existing := range []bool{false, true} {
		root := t.TempDir()
		dir := filepath.Join(root, "run", "wireguard")
		if existing {
			os.MkdirAll(dir, 0o777)
			os.Chmod(dir, 0o777)
			os.Chown(dir, otherUID, otherUID)
		}
		if out, err := exec.Command(tool, "--create", "--root="+root, conf).CombinedOutput(); err != nil {
			t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o755 {
			t.Errorf("existing %v: /run/wireguard is uid %d gid %d mode %04o, want root's 0755", existing, st.Uid, st.Gid, st.Mode&0o7777)
		}
	}
}

// exposure is systemd-analyze security's closing line.
var exposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestSystemdAnalyze runs systemd's own checks on both units as they are
// in the tree: `systemd-analyze verify` must say nothing, and `security
// --offline=true` must score at most maxExposure. verify wants the
// command to exist, so the copies checked here run this test binary
// instead; the package test checks the installed units as they are.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze (systemd) is not installed; scripts/setup.sh installs it")
		}
		t.Skip("systemd-analyze not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The sockets beside the services: verify looks for a service's
	// socket unit in the same directory.
	for _, unit := range append(slices.Clone(units), sockets...) {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/bin/pipeguard-headless-client", exe)
		if err := os.WriteFile(filepath.Join(dir, unit), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, unit := range append(slices.Clone(units), sockets...) {
		path := filepath.Join(dir, unit)
		out, err := exec.Command(sa, "verify", path).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
		if strings.HasSuffix(unit, ".socket") {
			continue
		}
		out, err = exec.Command(sa, "security", "--offline=true", path).CombinedOutput()
		m := exposure.FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("systemd-analyze security %s: %v\n%s", unit, err, out)
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", unit, score)
		if score > maxExposure {
			t.Errorf("%s: exposure %.1f, want at most %.1f\n%s", unit, score, maxExposure, out)
		}
	}
}
