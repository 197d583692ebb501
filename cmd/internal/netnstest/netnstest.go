// Package netnstest gives tests private network namespaces joined by veth
// pairs (package netns, over iproute2), so that end-to-end tests and
// benchmarks run real tunnels, real routes and real TCP without touching
// the host's network. Every namespace is named uniquely (process id and a
// counter), and is deleted, with everything in it, in t.Cleanup.
//
// Tests that use it need root; RequireRoot skips them elsewhere, but fails
// them when CI=true, where they must run.
package netnstest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/cmd/internal/netns"
)

// TB is the part of testing.TB the helpers use, so a benchmark harness
// outside `go test` can pass its own.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

var _ TB = (testing.TB)(nil)

// RequireRoot skips t unless it runs as root with iproute2 and
// /dev/net/tun; with CI=true it fails instead, so CI cannot pass by
// skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	var why []string
	if os.Geteuid() != 0 {
		why = append(why, fmt.Sprintf("euid %d is not root", os.Geteuid()))
	}
	if _, err := exec.LookPath("ip"); err != nil {
		why = append(why, "no ip (iproute2)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = append(why, err.Error())
	}
	if len(why) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: this test must run, but: %s (scripts/setup.sh installs what is missing)", strings.Join(why, "; "))
	}
	t.Skipf("needs root, iproute2 and /dev/net/tun: %s", strings.Join(why, "; "))
}

// counter makes names unique within the process; the pid makes them
// unique between processes (`go test` runs packages in parallel).
type counter struct{ n atomic.Uint64 }

// names is the process's one counter: the pid-plus-counter scheme needs a
// process-wide sequence. It only ever increments, so no test can depend
// on its value.
var names counter

// UniqueName returns prefix, the pid (7 digits at most), "-" and a
// counter: unique on the machine while this process lives, and short
// enough for an interface name (15 bytes) with a prefix of up to 3 bytes
// and fewer than 10,000 names per process.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), names.n.Add(1))
}

// NS is a namespace that belongs to one test.
type NS struct {
	*netns.NS
}

// New creates a namespace with its loopback up; it is deleted in
// t.Cleanup, after the cleanups registered later (so processes in it are
// killed first).
func New(t TB) *NS {
	t.Helper()
	ns, err := netns.Create(UniqueName("pgn"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Logf("%v", err)
		}
	})
	return &NS{ns}
}

// MustRun runs a command in the namespace, failing the test on error, and
// returns its combined output.
func (ns *NS) MustRun(t TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(name, args...)
	if err != nil {
		t.Fatalf("in netns %s: %s %s: %v\n%s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Link joins a and b with a veth pair, gives each end its address (a
// prefix such as 10.99.0.1/24) and brings both up. It returns the
// interface names in a and b; they go when the namespaces do.
func Link(t TB, a, b *NS, addrA, addrB netip.Prefix) (ifA, ifB string) {
	t.Helper()
	ifA, ifB = UniqueName("va"), UniqueName("vb")
	if err := netns.Link(a.NS, b.NS, ifA, ifB, addrA, addrB); err != nil {
		t.Fatalf("%v", err)
	}
	return ifA, ifB
}

// SettleIPv6 waits until no address in ns is still tentative (IPv6
// duplicate address detection, about a second after a link comes up), so
// that a snapshot of the routing tables taken next does not miss the
// local route the kernel adds for a link-local address once it is usable.
func (ns *NS) SettleIPv6(t TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := ns.Run("ip", "-6", "address", "show", "tentative")
		if err == nil && strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("netnstest: in %s, addresses still tentative after 10 s: %v\n%s", ns.Name, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pair makes two namespaces joined by a veth pair on 10.99.0.1/24 and
// 10.99.0.2/24 (private to the two namespaces: no packet of theirs
// reaches the host's network) and returns them with their addresses.
func Pair(t TB) (a, b *NS, addrA, addrB netip.Addr) {
	t.Helper()
	a, b = New(t), New(t)
	pa, pb := netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24")
	Link(t, a, b, pa, pb)
	return a, b, pa.Addr(), pb.Addr()
}

// etcNetns is where `ip netns exec` looks for a namespace's own /etc
// files: it bind-mounts /etc/netns/NAME/FILE over /etc/FILE, in a mount
// namespace of the command's own, for every FILE there.
const etcNetns = "/etc/netns"

// EtcDir makes the namespace's own /etc directory, /etc/netns/NAME, and
// removes it in t.Cleanup. What is put there is seen at /etc by commands
// run through ns.Command and ns.Run, and by nothing else: the host's /etc
// stays as it is. A file there takes effect only where /etc has a file of
// that name to mount it over.
func (ns *NS) EtcDir(t TB) string {
	t.Helper()
	dir := filepath.Join(etcNetns, ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("%v", err)
		}
		os.Remove(etcNetns) // only if no other namespace has one
	})
	return dir
}

// WriteEtc gives the namespace its own /etc/NAME holding content (made
// with EtcDir) and checks that a command in the namespace sees it, so a
// test never goes on to change the host's file by mistake. The host must
// have /etc/NAME for ip netns exec to mount over.
func (ns *NS) WriteEtc(t TB, name, content string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("/etc", name)); err != nil {
		t.Fatalf("netnstest: the namespace cannot have its own /etc/%s: the host has none to mount over (%v)", name, err)
	}
	p := filepath.Join(ns.EtcDir(t), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	ns.CheckEtc(t, name, content)
	return p
}

// CheckEtc fails the test unless a command in the namespace reads
// content at /etc/NAME.
func (ns *NS) CheckEtc(t TB, name, content string) {
	t.Helper()
	out, err := ns.Command(context.Background(), "cat", filepath.Join("/etc", name)).Output()
	if err != nil || string(out) != content {
		t.Fatalf("netnstest: in %s, /etc/%s is %q (%v), want the namespace's own %q", ns.Name, name, out, err, content)
	}
}
