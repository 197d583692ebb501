package e2e

import (
	"net/netip"
	"path/filepath"
	"testing"

	"pipeguard/cmd/headless-client/dns/resolvconftest"
	"pipeguard/cmd/headless-client/dns/resolvedtest"
	"pipeguard/cmd/internal/netnstest"
)

// TestDNSSyscallsWithinUnitFilter runs the client under strace -f with
// DNS, as the units would: the default mode over D-Bus (a fake resolved),
// and resolvconf mode with the real openresolv, whose shell script runs
// under the unit's filter too. Every system call must be one the units'
// SystemCallFilter= lets through (see TestSyscallsWithinUnitFilter).
func TestDNSSyscallsWithinUnitFilter(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	allowed := allowedSyscalls(t, unitFilter(t))
	fake := resolvedtest.Start(t)
	for _, mode := range []string{"auto", "resolvconf"} {
		t.Run(mode, func(t *testing.T) {
			ns := netnstest.New(t)
			if mode == "resolvconf" {
				resolvconftest.NewOpenresolv(t, ns, origResolvConf)
			}
			a := newNode(t, ns, netip.Addr{}, 1)
			a.writeDNSConfig(t, []string{"10.100.0.53"}, "corp.example")
			trace := filepath.Join(t.TempDir(), "strace")
			// Started real-time, as the unit starts it
			// (TestSyscallsWithinUnitFilter says why).
			p := start(t, a.ns, "client under strace", "chrt", []string{"PIPEGUARD_ID=e2e-dns-syscalls", fake.Env()},
				"--rr", "1", "strace", "-f", "-qq", "-o", trace, b.client, "standalone", "--config", a.conf, "--interface", a.iface,
				"--state-dir", t.TempDir(), "--dns-control", mode)
			p.waitSocket(t, a.iface)
			if mode == "auto" && len(fake.Calls()) == 0 {
				t.Fatalf("no call reached the fake resolved:\n%s", p.out)
			}
			if mode == "resolvconf" {
				wantNameservers(t, ns, "up", "10.100.0.53")
			}
			stopTraced(t, p, tracedChild(t, p.cmd.Process.Pid))
			if outside := syscallsOutside(t, trace, allowed); len(outside) > 0 {
				t.Errorf("system calls outside the units' SystemCallFilter=: %v", outside)
			}
		})
	}
}
