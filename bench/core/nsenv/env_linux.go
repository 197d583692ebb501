package nsenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"pipeguard/bench/core"
)

// The namespaces: two of them, A and B, joined by a veth pair, made by
// `ip` (iproute2). Every name the harness makes carries a
// recognisable prefix and the harness's pid, so that a later run can tell
// what a crashed run left behind (its pid is gone) from what a running
// one uses, and remove it.
const (
	NsPrefix    = "pgbench-"         // namespaces: pgbench-<pid>-<n>a, …b
	IfPrefix    = "pgb"              // interfaces: pgb<pid>v<n>a (veth), pgb<pid>t<n>a (tunnel); 15 bytes at most
	BuildPrefix = "pipeguard-bench-" // build directories in os.TempDir(): pipeguard-bench-<pid>-…
	UAPIDir     = "/var/run/wireguard"
)

// Addresses inside the namespaces (nothing of theirs reaches the host's
// network): the veth's, and the tunnel's.
const (
	OuterA, OuterB = "10.201.0.1", "10.201.0.2"
	InnerA, InnerB = "10.202.0.1", "10.202.0.2"
)

// names numbers the environments and interfaces of this process.
var names atomic.Uint64

// Env is a pair of namespaces joined by a veth pair, and the processes
// the harness runs in them. Close removes all of it. Used by one
// goroutine.
type Env struct {
	A, B   string   // namespace names
	VethA  string   // the veth end in A (OuterA)
	VethB  string   // the veth end in B (OuterB)
	Dir    string   // configs and state, removed by Close
	procs  []*Proc  // stopped by Close, last first
	Ifaces []string // tunnel interfaces made, whose UAPI sockets Close removes
	// ExtraEnv is added to the environment of every process Start runs
	// (the soak mode turns the clients' metrics endpoints on with it).
	ExtraEnv []string
}

// Lab is what every namespace mode starts from: the tunnel programs,
// built once for the run, and a fresh pair of namespaces. Close removes
// both.
type Lab struct {
	Bins *Bins
	Env  *Env
}

// Open checks with usable that the mode can run here, removes
// what crashed runs left behind (noting each on the progress writer),
// builds the tunnel programs and makes the namespaces. On failure it
// removes what it made.
func Open(ctx context.Context, out core.Out, usable func() error) (*Lab, error) {
	if err := usable(); err != nil {
		return nil, err
	}
	for _, what := range RemoveStale() {
		out.Note("removed %s, left by an earlier run", what)
	}
	bins, err := BuildTunnels(ctx)
	if err != nil {
		return nil, err
	}
	env, err := NewEnv()
	if err != nil {
		os.RemoveAll(bins.Dir)
		return nil, err
	}
	return &Lab{Bins: bins, Env: env}, nil
}

// Close removes the namespaces, with every process in them, then the
// tunnel programs. It returns the namespaces' close error.
func (b *Lab) Close() error {
	err := b.Env.Close()
	os.RemoveAll(b.Bins.Dir)
	return err
}

// CloseKeep calls close and keeps its error in *err unless *err holds one
// already: a deferred close whose failure the run must report.
func CloseKeep(err *error, close func() error) {
	if cerr := close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

// NewEnv makes the namespaces and the veth pair. On failure it removes
// what it made.
func NewEnv() (_ *Env, err error) {
	n := names.Add(1)
	base := fmt.Sprintf("%s%d-%d", NsPrefix, os.Getpid(), n)
	e := &Env{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Dir, err = os.MkdirTemp("", fmt.Sprintf("%s%d-", BuildPrefix, os.Getpid())); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		name *string
		end  string
	}{{&e.A, "a"}, {&e.B, "b"}} {
		name := base + side.end
		if err := IPCmd("netns", "add", name); err != nil {
			return nil, err
		}
		*side.name = name
		if err := IPCmd("-n", name, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	va, vb := fmt.Sprintf("%s%dv%da", IfPrefix, os.Getpid(), n), fmt.Sprintf("%s%dv%db", IfPrefix, os.Getpid(), n)
	if err := IPCmd("link", "add", va, "netns", e.A, "type", "veth", "peer", "name", vb, "netns", e.B); err != nil {
		return nil, err
	}
	e.VethA, e.VethB = va, vb
	for _, end := range [][3]string{{e.A, va, OuterA}, {e.B, vb, OuterB}} {
		if err := IPCmd("-n", end[0], "addr", "add", end[2]+"/24", "dev", end[1]); err != nil {
			return nil, err
		}
		if err := IPCmd("-n", end[0], "link", "set", end[1], "up"); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// TunnelName returns a new tunnel interface name for side "a" or "b".
func (e *Env) TunnelName(side string) string {
	name := fmt.Sprintf("%s%dt%d%s", IfPrefix, os.Getpid(), names.Add(1), side)
	e.Ifaces = append(e.Ifaces, name)
	return name
}

// Start runs a process in namespace ns; Close stops it if nobody did.
func (e *Env) Start(ns, name string, env []string, bin string, args ...string) (*Proc, error) {
	p, err := StartProc(ns, name, append(slices.Clip(e.ExtraEnv), env...), bin, args...)
	if err == nil {
		e.procs = append(e.procs, p)
	}
	return p, err
}

// StartIperfServer starts iperf3's server in namespace B, on IperfPort,
// and waits until it listens.
func (e *Env) StartIperfServer(ctx context.Context) error {
	srv, err := e.Start(e.B, "iperf3 server", nil, "iperf3", "-s", "-p", IperfPort, "--forceflush")
	if err != nil {
		return err
	}
	return WaitFor(ctx, srv, 5*time.Second, func() bool { return strings.Contains(srv.Out.String(), "Server listening") })
}

// StopGrace is how long a process has to exit after SIGTERM: the client
// promises 2 s.
const StopGrace = 3 * time.Second

// Close stops the processes, removes the namespaces (with anything still
// in them), the UAPI sockets of killed tunnels and the directory. It
// returns the first failure, after trying everything.
func (e *Env) Close() error {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].Stop(StopGrace)
	}
	e.procs = nil
	var first error
	for _, ns := range []string{e.A, e.B} {
		if ns == "" {
			continue
		}
		if err := removeNetns(ns); err != nil && first == nil {
			first = err
		}
	}
	e.A, e.B = "", ""
	for _, ifc := range e.Ifaces {
		os.Remove(SocketPath(ifc))
	}
	e.Ifaces = nil
	if e.Dir != "" {
		if err := os.RemoveAll(e.Dir); err != nil && first == nil {
			first = err
		}
		e.Dir = ""
	}
	return first
}

// removeNetns kills whatever still runs in ns and deletes it.
func removeNetns(ns string) error {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			// Never the harness itself: a thread of it that joined the
			// namespace (to make a socket there) makes it listed.
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return IPCmd("netns", "del", ns)
}

// SocketPath is iface's UAPI socket.
func SocketPath(iface string) string { return filepath.Join(UAPIDir, iface+".sock") }

// IPCmd runs ip with args; a failure wraps ErrNetns and says what ip said.
func IPCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip %s: %v: %s", core.ErrNetns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RemoveStale removes what runs of the harness that are gone left behind:
// namespaces (and the processes in them), UAPI sockets and build
// directories whose name carries the pid of a process that no longer
// exists. It returns what it removed, for the log.
func RemoveStale() (removed []string) {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) > 0 && staleName(f[0], NsPrefix, "-") {
				if removeNetns(f[0]) == nil {
					removed = append(removed, "namespace "+f[0])
				}
			}
		}
	}
	if ents, err := os.ReadDir(UAPIDir); err == nil {
		for _, ent := range ents {
			if strings.HasSuffix(ent.Name(), ".sock") && staleName(ent.Name(), IfPrefix, "t") {
				if os.Remove(filepath.Join(UAPIDir, ent.Name())) == nil {
					removed = append(removed, "socket "+ent.Name())
				}
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, ent := range ents {
			if ent.IsDir() && staleName(ent.Name(), BuildPrefix, "-") {
				if os.RemoveAll(filepath.Join(os.TempDir(), ent.Name())) == nil {
					removed = append(removed, "directory "+ent.Name())
				}
			}
		}
	}
	return removed
}

// staleName reports whether name is prefix, a pid, sep and more, and that
// pid is no longer a process.
func staleName(name, prefix, sep string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	digits, _, ok := strings.Cut(rest, sep)
	pid, err := strconv.Atoi(digits)
	if !ok || err != nil || pid <= 0 {
		return false
	}
	return !processExists(pid)
}

// processExists reports whether pid is a process (signal 0 reaches it, or
// it exists but belongs to someone else).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Congestion-control sysctls, read and written from inside a namespace:
// each network namespace has its own, copied from the initial
// namespace's when it is made, so a machine's default (bbr on some)
// would otherwise decide how the TCP under test answers a queue's drops.
const (
	ccPath        = "/proc/sys/net/ipv4/tcp_congestion_control"
	ccOfferedPath = "/proc/sys/net/ipv4/tcp_available_congestion_control"
)

// SetCongestionControl makes algo the TCP congestion control of every
// socket made after it in both namespaces (iperf3's, both ways), and
// checks that it took.
func (e *Env) SetCongestionControl(algo string) error {
	for _, ns := range []string{e.A, e.B} {
		err := InNetns(ns, func() error {
			if err := os.WriteFile(ccPath, []byte(algo), 0); err != nil {
				offered, _ := os.ReadFile(ccOfferedPath)
				return fmt.Errorf("TCP congestion control %q: %w (the kernel offers: %s)", algo, err, strings.TrimSpace(string(offered)))
			}
			got, err := os.ReadFile(ccPath)
			if err != nil {
				return err
			}
			if s := strings.TrimSpace(string(got)); s != algo {
				return fmt.Errorf("TCP congestion control %q: the namespace has %q", algo, s)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
