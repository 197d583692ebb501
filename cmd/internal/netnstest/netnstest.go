// Package netnstest gives tests private network namespaces joined by veth
// pairs, made with iproute2 (`ip netns`), so that end-to-end tests and
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
	"strings"
	"sync/atomic"
	"testing"
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

// NS is one network namespace.
type NS struct {
	Name string
}

// New creates a namespace with its loopback up; it is deleted in
// t.Cleanup, after the cleanups registered later (processes in it are
// killed first).
func New(t TB) *NS {
	t.Helper()
	ns := &NS{Name: UniqueName("pgn")}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Command returns a command that runs name with args inside the
// namespace (through `ip netns exec`).
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	out, err := ns.Command(context.Background(), name, args...).CombinedOutput()
	return string(out), err
}

// MustRun is Run that fails the test on error.
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
// interface names in a and b.
func Link(t TB, a, b *NS, addrA, addrB netip.Prefix) (ifA, ifB string) {
	t.Helper()
	ifA, ifB = UniqueName("va"), UniqueName("vb")
	if out, err := exec.Command("ip", "link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("creating veth %s-%s: %v: %s", ifA, ifB, err, out)
	}
	for _, end := range []struct {
		ns   *NS
		name string
		addr netip.Prefix
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		end.ns.MustRun(t, "ip", "addr", "add", end.addr.String(), "dev", end.name, "nodad")
		end.ns.MustRun(t, "ip", "link", "set", end.name, "up")
	}
	return ifA, ifB
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
