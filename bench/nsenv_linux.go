package bench

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
)

// The netns mode's namespaces: two of them, A and B, joined by a veth
// pair, made by `ip` (iproute2). Every name the harness makes carries a
// recognisable prefix and the harness's pid, so that a later run can tell
// what a crashed run left behind (its pid is gone) from what a running
// one uses, and remove it.
const (
	nsPrefix    = "pgbench-"         // namespaces: pgbench-<pid>-<n>a, …b
	ifPrefix    = "pgb"              // interfaces: pgb<pid>v<n>a (veth), pgb<pid>t<n>a (tunnel); 15 bytes at most
	buildPrefix = "pipeguard-bench-" // build directories in os.TempDir(): pipeguard-bench-<pid>-…
	uapiDir     = "/var/run/wireguard"
)

// Addresses inside the namespaces (nothing of theirs reaches the host's
// network): the veth's, and the tunnel's.
var (
	outerA, outerB = "10.201.0.1", "10.201.0.2"
	innerA, innerB = "10.202.0.1", "10.202.0.2"
)

// names numbers the environments and interfaces of this process.
var names atomic.Uint64

// nsEnv is a pair of namespaces joined by a veth pair, and the processes
// the harness runs in them. close removes all of it. Used by one
// goroutine.
type nsEnv struct {
	a, b   string    // namespace names
	dir    string    // configs and state, removed by close
	procs  []*nsProc // stopped by close, last first
	ifaces []string  // tunnel interfaces made, whose UAPI sockets close removes
	// extraEnv is added to the environment of every process start runs
	// (the soak mode turns the clients' metrics endpoints on with it).
	extraEnv []string
}

// nsBench is what every namespace mode starts from: the tunnel programs,
// built once for the run, and a fresh pair of namespaces. close removes
// both.
type nsBench struct {
	bins *tunnelBins
	env  *nsEnv
}

// openNsBench checks with usable that the mode can run here, removes
// what crashed runs left behind (noting each on the progress writer),
// builds the tunnel programs and makes the namespaces. On failure it
// removes what it made.
func openNsBench(ctx context.Context, cfg *Config, usable func() error) (*nsBench, error) {
	if err := usable(); err != nil {
		return nil, err
	}
	for _, what := range removeStale() {
		note(cfg, "removed %s, left by an earlier run", what)
	}
	bins, err := buildTunnels(ctx)
	if err != nil {
		return nil, err
	}
	env, err := newNsEnv()
	if err != nil {
		os.RemoveAll(bins.dir)
		return nil, err
	}
	if cfg.NoQueueManagement {
		env.extraEnv = append(env.extraEnv, "PIPEGUARD_QUEUE_MANAGEMENT=off")
		note(cfg, "PipeGuard clients run with queue management off")
	}
	return &nsBench{bins: bins, env: env}, nil
}

// close removes the namespaces, with every process in them, then the
// tunnel programs. It returns the namespaces' close error.
func (b *nsBench) close() error {
	err := b.env.close()
	os.RemoveAll(b.bins.dir)
	return err
}

// closeKeep calls close and keeps its error in *err unless *err holds one
// already: a deferred close whose failure the run must report.
func closeKeep(err *error, close func() error) {
	if cerr := close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

// newNsEnv makes the namespaces and the veth pair. On failure it removes
// what it made.
func newNsEnv() (_ *nsEnv, err error) {
	n := names.Add(1)
	base := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), n)
	e := &nsEnv{}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", fmt.Sprintf("%s%d-", buildPrefix, os.Getpid())); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		name *string
		end  string
	}{{&e.a, "a"}, {&e.b, "b"}} {
		name := base + side.end
		if err := ipCmd("netns", "add", name); err != nil {
			return nil, err
		}
		*side.name = name
		if err := ipCmd("-n", name, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	va, vb := fmt.Sprintf("%s%dv%da", ifPrefix, os.Getpid(), n), fmt.Sprintf("%s%dv%db", ifPrefix, os.Getpid(), n)
	if err := ipCmd("link", "add", va, "netns", e.a, "type", "veth", "peer", "name", vb, "netns", e.b); err != nil {
		return nil, err
	}
	for _, end := range [][3]string{{e.a, va, outerA}, {e.b, vb, outerB}} {
		if err := ipCmd("-n", end[0], "addr", "add", end[2]+"/24", "dev", end[1]); err != nil {
			return nil, err
		}
		if err := ipCmd("-n", end[0], "link", "set", end[1], "up"); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// tunnelName returns a new tunnel interface name for side "a" or "b".
func (e *nsEnv) tunnelName(side string) string {
	name := fmt.Sprintf("%s%dt%d%s", ifPrefix, os.Getpid(), names.Add(1), side)
	e.ifaces = append(e.ifaces, name)
	return name
}

// start runs a process in namespace ns; close stops it if nobody did.
func (e *nsEnv) start(ns, name string, env []string, bin string, args ...string) (*nsProc, error) {
	p, err := startProc(ns, name, append(slices.Clip(e.extraEnv), env...), bin, args...)
	if err == nil {
		e.procs = append(e.procs, p)
	}
	return p, err
}

// startIperfServer starts iperf3's server in namespace B, on iperfPort,
// and waits until it listens.
func (e *nsEnv) startIperfServer(ctx context.Context) error {
	srv, err := e.start(e.b, "iperf3 server", nil, "iperf3", "-s", "-p", iperfPort, "--forceflush")
	if err != nil {
		return err
	}
	return waitFor(ctx, srv, 5*time.Second, func() bool { return strings.Contains(srv.out.String(), "Server listening") })
}

// stopGrace is how long a process has to exit after SIGTERM: the client
// promises 2 s.
const stopGrace = 3 * time.Second

// close stops the processes, removes the namespaces (with anything still
// in them), the UAPI sockets of killed tunnels and the directory. It
// returns the first failure, after trying everything.
func (e *nsEnv) close() error {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop(stopGrace)
	}
	e.procs = nil
	var first error
	for _, ns := range []string{e.a, e.b} {
		if ns == "" {
			continue
		}
		if err := removeNetns(ns); err != nil && first == nil {
			first = err
		}
	}
	e.a, e.b = "", ""
	for _, ifc := range e.ifaces {
		os.Remove(socketPath(ifc))
	}
	e.ifaces = nil
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil && first == nil {
			first = err
		}
		e.dir = ""
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
	return ipCmd("netns", "del", ns)
}

func socketPath(iface string) string { return filepath.Join(uapiDir, iface+".sock") }

// ipCmd runs ip with args; a failure wraps ErrNetns and says what ip said.
func ipCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip %s: %v: %s", ErrNetns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeStale removes what runs of the harness that are gone left behind:
// namespaces (and the processes in them), UAPI sockets and build
// directories whose name carries the pid of a process that no longer
// exists. It returns what it removed, for the log.
func removeStale() (removed []string) {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) > 0 && staleName(f[0], nsPrefix, "-") {
				if removeNetns(f[0]) == nil {
					removed = append(removed, "namespace "+f[0])
				}
			}
		}
	}
	if ents, err := os.ReadDir(uapiDir); err == nil {
		for _, ent := range ents {
			if strings.HasSuffix(ent.Name(), ".sock") && staleName(ent.Name(), ifPrefix, "t") {
				if os.Remove(filepath.Join(uapiDir, ent.Name())) == nil {
					removed = append(removed, "socket "+ent.Name())
				}
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, ent := range ents {
			if ent.IsDir() && staleName(ent.Name(), buildPrefix, "-") {
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
