// Package resolvconftest gives tests a resolvconf(8) to talk to: the
// real openresolv, confined to one network namespace's own /etc, or a
// fake program that records how it was called.
//
// Confinement: `ip netns exec` bind-mounts the files of
// /etc/netns/NAME/ over /etc for the command it runs. Openresolv reads
// /etc/resolvconf.conf, so the namespace gets its own, which points
// openresolv's resolv.conf, state directory (normally /run/resolvconf)
// and backup file (resolv.conf.bak beside resolv.conf) into a temporary
// directory, and turns off every subscriber but libc's, and libc's
// service restart. The namespace's /etc/resolv.conf is a symlink to that
// temporary resolv.conf, so its programs read what openresolv writes.
// The host's /etc/resolv.conf, /etc/resolvconf.conf and /run/resolvconf
// are never touched; both files are checked through the namespace before
// a test goes on.
package resolvconftest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"pipeguard/cmd/internal/netnstest"
)

// Openresolv is openresolv set up for one namespace.
type Openresolv struct {
	// Dir holds resolv.conf, its backup and openresolv's state; removed
	// in t.Cleanup.
	Dir string
	ns  *netnstest.NS
}

// resolvconfConf is the namespace's /etc/resolvconf.conf.
const resolvconfConf = `# PipeGuard test: openresolv for network namespace %[1]s only
resolv_conf=%[2]s/resolv.conf
state_dir=%[2]s/state
libc_restart=:
avahi_daemon_pidfile=%[2]s/none
mdnsd_pidfile=%[2]s/none
dnsmasq=NO
named=NO
pdnsd=NO
pdns_recursor=NO
unbound=NO
`

// NewOpenresolv confines openresolv in ns, with original as the
// namespace's resolv.conf. It fails the test if openresolv is missing
// (scripts/setup.sh installs it) or the namespace does not see its own
// files.
func NewOpenresolv(t testing.TB, ns *netnstest.NS, original string) *Openresolv {
	t.Helper()
	out, err := exec.Command("resolvconf", "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "openresolv") {
		t.Fatalf("resolvconftest: openresolv is needed (apt install openresolv; scripts/setup.sh does): %q, %v", out, err)
	}
	dir, err := os.MkdirTemp("", "pgresolv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	etc := ns.EtcDir(t)
	conf := fmt.Sprintf(resolvconfConf, ns.Name, dir)
	if err := os.WriteFile(filepath.Join(etc, "resolvconf.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "resolv.conf"), filepath.Join(etc, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"resolvconf.conf": conf, "resolv.conf": original} {
		if _, err := os.Stat(filepath.Join("/etc", name)); err != nil {
			t.Fatalf("resolvconftest: the host has no /etc/%s for the namespace's to be mounted over: %v", name, err)
		}
		ns.CheckEtc(t, name, want)
	}
	return &Openresolv{Dir: dir, ns: ns}
}

// Command is resolvconf run in the namespace, for dns.System.ResolvconfCmd.
func (o *Openresolv) Command() []string {
	return []string{"ip", "netns", "exec", o.ns.Name, "resolvconf"}
}

// ResolvConf is the namespace's resolv.conf as its programs read it.
func (o *Openresolv) ResolvConf(t testing.TB) string {
	t.Helper()
	return o.ns.MustRun(t, "cat", "/etc/resolv.conf")
}

// Interfaces lists the interfaces openresolv holds (resolvconf -i).
func (o *Openresolv) Interfaces(t testing.TB) string {
	t.Helper()
	out, _ := o.ns.Run("resolvconf", "-i")
	return strings.TrimSpace(out)
}

// Fake is a resolvconf program that records its arguments and standard
// input and changes nothing.
type Fake struct {
	// Path is the program.
	Path string
	log  string
}

// NewFake writes the fake program into a temporary directory.
func NewFake(t testing.TB) *Fake {
	t.Helper()
	dir := t.TempDir()
	f := &Fake{Path: filepath.Join(dir, "resolvconf"), log: filepath.Join(dir, "calls")}
	script := fmt.Sprintf("#!/bin/sh\n{ echo \"resolvconf $*\"; if [ \"$1\" = -a ]; then sed 's/^/< /'; fi; } >>%s\n", f.log)
	if err := os.WriteFile(f.Path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// Calls returns the calls so far: each "resolvconf ARGS" line, followed
// by the lines it read on stdin, each after "< ".
func (f *Fake) Calls(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// Reset forgets the calls so far.
func (f *Fake) Reset() { os.Remove(f.log) }
