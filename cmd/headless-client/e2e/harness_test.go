package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/cmd/internal/tcpcheck"
	"pipeguard/noise"
)

// bins are the binaries under test, built once per test run (without
// -race: they are the system under test, not the test).
type bins struct{ client, wgpeer string }

// buildDir is the directory the binaries go to, made on first use and
// removed by TestMain.
var buildDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "pipeguard-e2e-") })

// build builds both binaries on first use, so that a skipped run builds
// nothing.
var build = sync.OnceValues(func() (bins, error) {
	dir, err := buildDir()
	if err != nil {
		return bins{}, err
	}
	b := bins{client: filepath.Join(dir, "headless-client"), wgpeer: filepath.Join(dir, "wgpeer")}
	for pkg, out := range map[string]string{"pipeguard/cmd/headless-client": b.client, "pipeguard/cmd/wgpeer": b.wgpeer} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, o)
		}
	}
	return b, nil
})

func TestMain(m *testing.M) {
	if code, ok := helperMain(); ok {
		os.Exit(code)
	}
	code := m.Run()
	if dir, err := buildDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// binaries returns the built binaries, after RequireRoot.
func binaries(t *testing.T) bins {
	t.Helper()
	netnstest.RequireRoot(t)
	b, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads at once. It keeps the first maxOutput bytes, so that a process
// that floods its log cannot exhaust the test's memory, and counts every
// line.
type syncBuffer struct {
	mu    sync.Mutex // guards b and lines
	b     bytes.Buffer
	lines int
}

// maxOutput is how much of a process's output a syncBuffer keeps.
const maxOutput = 8 << 20

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines += bytes.Count(p, []byte{'\n'})
	if room := maxOutput - s.b.Len(); room > 0 {
		s.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Lines is the number of lines written so far.
func (s *syncBuffer) Lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a process of a test in a namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr
	exit chan error  // receives Wait's result once; stop puts it back
}

// start runs bin with args in ns. The process is killed in t.Cleanup if
// the test did not stop it, and its output is logged if the test failed.
func start(t *testing.T, ns *netnstest.NS, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startFiles(t, ns, name, nil, bin, env, args...)
}

// startFiles is start, passing files as descriptors 3 and on.
func startFiles(t *testing.T, ns *netnstest.NS, name string, files []*os.File, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, exit: make(chan error, 1)}
	p.cmd = ns.Command(context.Background(), bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.ExtraFiles = files
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exit <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.exit:
			p.exit <- err
		default:
			p.cmd.Process.Kill()
			<-p.exit
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.name, p.out)
		}
	})
	return p
}

// signal sends sig and, for SIGTERM and SIGINT, waits up to within for
// the exit. It returns the exit code and how long it took.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) (int, time.Duration) {
	t.Helper()
	begin := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	select {
	case err := <-p.exit:
		p.exit <- err
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		return code, time.Since(begin)
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v of %v", p.name, within, sig)
		return 0, 0
	}
}

// waitSocket waits for the UAPI socket of iface to answer, which the
// client opens last, or fails if the process exits first.
func (p *proc) waitSocket(t *testing.T, iface string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exit:
			p.exit <- err
			t.Fatalf("%s exited at start: %v\n%s", p.name, err, p.out)
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.Dial("unix", uapi.SocketPath(iface)); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s: no UAPI socket %s within 15 s\n%s", p.name, uapi.SocketPath(iface), p.out)
}

// node is one tunnel endpoint of a test: its namespace, keys, addresses
// and config.
type node struct {
	ns    *netnstest.NS
	iface string
	key   noise.PrivateKey
	outer netip.Addr      // its veth address
	inner [2]netip.Prefix // tunnel addresses, IPv4 and IPv6
	port  uint16
	conf  string // config file path
}

// newNode makes a node in ns with tunnel addresses 10.100.0.<n>/24 and
// fd10::<n>/64.
func newNode(t *testing.T, ns *netnstest.NS, outer netip.Addr, n byte) *node {
	t.Helper()
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &node{
		ns: ns, iface: netnstest.UniqueName("pg"), key: k, outer: outer, port: 51820,
		inner: [2]netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100, 0, n}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x10, 15: n}), 64),
		},
		conf: filepath.Join(t.TempDir(), "pg.conf"),
	}
}

// newNodes makes the two nodes of most tests, one in each namespace of a
// new veth pair: a (tunnel addresses .1) and z (.2).
func newNodes(t *testing.T) (a, z *node) {
	t.Helper()
	nsA, nsB, outerA, outerB := netnstest.Pair(t)
	return newNode(t, nsA, outerA, 1), newNode(t, nsB, outerB, 2)
}

// peeredNodes is newNodes with each node's config naming the other as its
// one peer, at its veth address.
func peeredNodes(t *testing.T) (a, z *node) {
	t.Helper()
	a, z = newNodes(t)
	a.writeConfig(t, z.asPeer(true))
	z.writeConfig(t, a.asPeer(true))
	return a, z
}

// asPeer is n as another node's [Peer], reachable at its veth address.
func (n *node) asPeer(withEndpoint bool) config.Peer {
	p := config.Peer{
		PublicKey:  n.key.Public(),
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.inner[0].Addr(), 32), netip.PrefixFrom(n.inner[1].Addr(), 128)},
	}
	if withEndpoint {
		p.Endpoint = netip.AddrPortFrom(n.outer, n.port).String()
	}
	return p
}

// writeConfig writes n's config file (mode 0600) with peers.
func (n *node) writeConfig(t *testing.T, peers ...config.Peer) {
	t.Helper()
	c := config.Config{
		Interface: config.Interface{PrivateKey: n.key, Addresses: n.inner[:], ListenPort: n.port, MTU: config.DefaultMTU},
		Peers:     peers,
	}
	// Written to a new file and renamed into place: an existing file would
	// keep its mode and owner, and a reload must never see half a file.
	tmp := n.conf + ".new"
	if err := os.WriteFile(tmp, []byte(c.Format()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, n.conf); err != nil {
		t.Fatal(err)
	}
}

// startClient runs the headless client for n and waits until it is up.
func (n *node) startClient(t *testing.T, b bins, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--log-level", "debug", "standalone", "--config", n.conf, "--interface", n.iface,
		"--state-dir", t.TempDir()}, extra...)
	// A client the test had to kill cannot remove its socket; this
	// cleanup runs after start's, which kills it.
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := start(t, n.ns, "client "+n.iface, b.client, []string{"PIPEGUARD_ID=e2e-" + n.iface}, args...)
	p.waitSocket(t, n.iface)
	return p
}

// startWGPeer runs cmd/wgpeer (wireguard-go) for n and waits until its
// UAPI socket answers.
func (n *node) startWGPeer(t *testing.T, b bins) *proc {
	t.Helper()
	t.Cleanup(func() { os.Remove(uapi.SocketPath(n.iface)) })
	p := start(t, n.ns, "wgpeer "+n.iface, b.wgpeer, nil, "--config", n.conf, "--interface", n.iface, "--uapi", "--log-level", "debug")
	p.waitSocket(t, n.iface)
	return p
}

// ping pings dst from n, allowing a few seconds for the first handshake
// (and for IPv6 on a link that just came up).
func (n *node) ping(t *testing.T, dst netip.Addr) {
	t.Helper()
	if out, err := n.ns.Run("ping", "-c", "2", "-i", "0.2", "-w", "8", dst.String()); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", dst, n.ns.Name, err, out)
	}
}

// transfer sends size bytes of TCP from n to to's IPv4 tunnel address and
// fails the test unless they arrive intact (SHA-256 compared). Both
// sockets are made in this process, each on a thread in its namespace.
func transfer(t *testing.T, from, to *node, size int64, wrap func(net.Conn) net.Conn) tcpcheck.Result {
	t.Helper()
	res, err := tryTransfer(t, from, to, size, wrap)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tryTransfer is transfer without failing the test, for goroutines other
// than the test's.
func tryTransfer(t *testing.T, from, to *node, size int64, wrap func(net.Conn) net.Conn) (tcpcheck.Result, error) {
	dst := netip.AddrPortFrom(to.inner[0].Addr(), 5201)
	var ln net.Listener
	if err := to.ns.Do(func() (err error) { ln, err = net.Listen("tcp", dst.String()); return err }); err != nil {
		return tcpcheck.Result{}, err
	}
	// 30 s: 50 MB need under 1 s here, and a tunnel that died must not
	// hold the suite for long.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(ctx context.Context) (c net.Conn, err error) {
		err = from.ns.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", dst.String())
			return err
		})
		if err == nil && wrap != nil {
			c = wrap(c)
		}
		return c, err
	}
	res, err := tcpcheck.Transfer(ctx, ln, dial, size, uint64(time.Now().UnixNano()))
	if err != nil {
		return res, fmt.Errorf("TCP %s → %s: %w", from.inner[0].Addr(), dst, err)
	}
	t.Logf("TCP %s → %s: %d MB in %v (%.0f Mbit/s)", from.inner[0].Addr(), dst, res.Bytes>>20, res.Duration.Round(time.Millisecond), res.Mbps())
	return res, nil
}

// wg runs Debian's wg(8) and returns its output.
func wg(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("wg", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("wg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// assertGone checks that nothing of the client for n is left: no
// interface, no route through it, no UAPI socket.
func assertGone(t *testing.T, n *node) {
	t.Helper()
	if out, err := n.ns.Run("ip", "link", "show", n.iface); err == nil {
		t.Errorf("interface %s still exists:\n%s", n.iface, out)
	}
	routes := n.ns.MustRun(t, "ip", "route", "show") + n.ns.MustRun(t, "ip", "-6", "route", "show")
	if strings.Contains(routes, n.iface) || strings.Contains(routes, "10.100.") || strings.Contains(routes, "fd10:") {
		t.Errorf("routes left behind:\n%s", routes)
	}
	if _, err := os.Stat(uapi.SocketPath(n.iface)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UAPI socket %s left behind (%v)", uapi.SocketPath(n.iface), err)
	}
}
