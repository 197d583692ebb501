// Package deb_test checks the Debian package the way an admin meets it:
// `make deb`, lintian, then dpkg -i, -r and -P on this machine, with
// everything each step promises checked and the machine left as it was.
// It needs root (CI runs it; elsewhere it skips without root).
package deb_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pkg = "pipeguard"

// Where the package puts things.
const (
	binary  = "/usr/bin/pipeguard-headless-client"
	goName  = "/usr/bin/pipeguard-go"
	unitDir = "/usr/lib/systemd/system"
	confDir = "/etc/pipeguard"
	state   = "/var/lib/pipeguard"
	// rootState is where runs as root keep their state.
	rootState = "/var/lib/pipeguard-root"
	docDir    = "/usr/share/doc/pipeguard"
)

// units are the services and their sockets.
var units = []string{"pipeguard-headless-client@.service", "pipeguard-tunnel@.service",
	"pipeguard-headless-client@.socket", "pipeguard-tunnel@.socket"}

// tmpfiles keeps /run/wireguard root's.
const tmpfiles = "/usr/lib/tmpfiles.d/pipeguard.conf"

// TestPackage builds the package, lints it, installs, removes and purges
// it, and checks each step.
func TestPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test must run, but it needs root")
		}
		t.Skip("needs root: it installs and purges the package")
	}
	for _, tool := range []string{"make", "dpkg", "dpkg-query", "lintian", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/setup.sh installs it): %v", tool, err)
		}
	}
	// A machine that has the package, or a user of its name, is not ours
	// to change.
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", pkg).Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("%s is installed on this machine (%s); the test would replace it", pkg, out)
	}
	if userExists(t, "passwd") {
		t.Fatalf("a user %s exists on this machine; the test would remove it", pkg)
	}

	deb := makeDeb(t)
	version := strings.SplitN(filepath.Base(deb), "_", 3)[1]
	t.Logf("built %s (version %s)", deb, version)

	lint := run(t, "lintian", deb)
	for line := range strings.SplitSeq(lint, "\n") {
		if strings.HasPrefix(line, "E:") {
			t.Errorf("lintian: %s", line)
		}
	}
	t.Logf("lintian:\n%s", lint)

	t.Cleanup(func() {
		if installed(t) {
			dpkg(t, "-P", pkg)
		}
	})
	dpkg(t, "-i", deb)
	checkInstalled(t, version)

	// What an admin adds: a config and, once a tunnel ran, its device id.
	conf := filepath.Join(confDir, "pg0.conf")
	id := filepath.Join(state, "config", "pipeguard-id")
	uid, gid := lookupID(t, "passwd"), lookupID(t, "group")
	if err := os.WriteFile(conf, []byte("[Interface]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(id, []byte("TESTDEVICEID\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{conf, state, filepath.Dir(id), id} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	dpkg(t, "-r", pkg)
	gone := []string{binary, goName, tmpfiles}
	for _, u := range units {
		gone = append(gone, filepath.Join(unitDir, u))
	}
	for _, p := range gone {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after dpkg -r, %s is still there (%v)", p, err)
		}
	}
	for _, p := range []string{conf, id} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dpkg -r removed %s, which only purge may remove: %v", p, err)
		}
	}
	if !userExists(t, "passwd") {
		t.Error("dpkg -r removed the pipeguard user, who still owns the configs")
	}

	// And a run as root's state, which purge removes too.
	if err := os.MkdirAll(filepath.Join(rootState, "config"), 0o700); err != nil {
		t.Fatal(err)
	}
	dpkg(t, "-P", pkg)
	for _, p := range []string{confDir, state, rootState, "/var/log/pipeguard", docDir} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after dpkg -P, %s is still there (%v)", p, err)
		}
	}
	if userExists(t, "passwd") || userExists(t, "group") {
		t.Error("after dpkg -P, the pipeguard user or group is still there")
	}
	if out, _ := exec.Command("dpkg-statoverride", "--list", confDir).Output(); len(out) > 0 {
		t.Errorf("after dpkg -P, a statoverride is left: %s", out)
	}
	if installed(t) {
		t.Error("after dpkg -P, dpkg still lists the package")
	}
}

// checkInstalled checks what dpkg -i must have put in place.
func checkInstalled(t *testing.T, version string) {
	t.Helper()
	if got := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f", "${Version}", pkg)); got != version {
		t.Errorf("dpkg knows version %q, the file name says %q", got, version)
	}
	checkStatic(t, binary)
	if target, err := os.Readlink(goName); err != nil || target != "pipeguard-headless-client" {
		t.Errorf("%s: link to %q (%v), want pipeguard-headless-client", goName, target, err)
	}
	for _, name := range []string{binary, goName} {
		out := strings.Fields(run(t, name, "--version"))
		if len(out) == 0 || out[len(out)-1] != version {
			t.Errorf("%s --version says %q, want version %s", name, out, version)
		}
	}
	for _, u := range units {
		path := filepath.Join(unitDir, u)
		if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
		}
		if strings.HasSuffix(u, ".socket") {
			continue
		}
		out := run(t, "systemd-analyze", "security", "--offline=true", path)
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: no score in\n%s", path, out)
		}
		if score, _ := strconv.ParseFloat(m[1], 64); score > 2.0 {
			t.Errorf("%s: exposure %s, want at most 2.0", path, m[1])
		} else {
			t.Logf("%s: exposure %s", path, m[1])
		}
	}
	if _, err := os.Stat(tmpfiles); err != nil {
		t.Error(err)
	}
	// The postinst applied it: /run/wireguard is root's, 0755.
	var rw syscall.Stat_t
	if err := syscall.Stat("/run/wireguard", &rw); err != nil || rw.Uid != 0 || rw.Mode&0o7777 != 0o755 {
		t.Errorf("/run/wireguard: uid %d mode %04o (%v), want root's 0755", rw.Uid, rw.Mode&0o7777, err)
	}
	fi, err := os.Stat(confDir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o700 || int(st.Uid) != lookupID(t, "passwd") {
		t.Errorf("%s: mode %v owner %d, want 0700 and the pipeguard user", confDir, fi.Mode().Perm(), st.Uid)
	}
	pw := strings.Split(strings.TrimSpace(run(t, "getent", "passwd", pkg)), ":")
	if uid, _ := strconv.Atoi(pw[2]); uid == 0 || uid >= 1000 || !strings.HasSuffix(pw[6], "nologin") {
		t.Errorf("the pipeguard user %q is not a system account without a shell", pw)
	}
	for _, doc := range []string{"copyright", "changelog.gz"} {
		if _, err := os.Stat(filepath.Join(docDir, doc)); err != nil {
			t.Error(err)
		}
	}
}

// checkStatic fails unless path is an ELF executable with no interpreter
// and no shared libraries.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not static", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs %v: not static", path, libs)
	}
}

// makeDeb runs `make deb` at the repository's root and returns the
// package it built.
func makeDeb(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("make", "-s", "-C", "../..", "deb")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^built (dist/\S+\.deb)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("make deb did not say what it built:\n%s", out)
	}
	return filepath.Join("../..", string(m[1]))
}

// dpkg runs dpkg with args, waiting out another dpkg's lock (an apt run
// elsewhere on the machine) for up to 2 minutes.
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	for end := time.Now().Add(2 * time.Minute); ; {
		out, err := exec.Command("dpkg", args...).CombinedOutput()
		if err == nil {
			return
		}
		if bytes.Contains(out, []byte("lock")) && time.Now().Before(end) {
			time.Sleep(2 * time.Second)
			continue
		}
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func installed(t *testing.T) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", pkg).Output()
	return err == nil && strings.Contains(string(out), " installed")
}

func userExists(t *testing.T, db string) bool {
	return exec.Command("getent", db, pkg).Run() == nil
}

// lookupID is the pipeguard user's uid (db passwd) or group's gid (group).
func lookupID(t *testing.T, db string) int {
	t.Helper()
	f := strings.Split(strings.TrimSpace(run(t, "getent", db, pkg)), ":")
	id, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatalf("getent %s %s: %q", db, pkg, f)
	}
	return id
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCopyrightCoversModules: the binary is linked statically, so the
// copyright file must name every module it is built from; a new
// dependency without its license paragraph fails here.
func TestCopyrightCoversModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "pipeguard/cmd/headless-client").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	text, err := os.ReadFile("copyright")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mod := range strings.Fields(string(out)) {
		if mod == "pipeguard" || seen[mod] {
			continue
		}
		seen[mod] = true
		if !bytes.Contains(text, []byte("vendor/"+mod+"/*")) {
			t.Errorf("packaging/deb/copyright has no Files: vendor/%s/* paragraph; the binary links that module", mod)
		}
	}
	if len(seen) == 0 {
		t.Fatal("go list named no modules")
	}
}
