package nsenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/noise"
)

// MTU is every tunnel interface's MTU in the namespace modes:
// PipeGuard's ceiling (wire.MaxInnerSize), and wireguard-go is held to it.
const MTU = 1280

// IperfPort is the iperf3 server's port in namespace B.
const IperfPort = "5201"

// End is one end of a tunnel under test: its namespace, interface
// and keys, and the peer it talks to.
type End struct {
	NS, Iface, Inner, PeerOuter, PeerInner string
	Key                                    noise.PrivateKey
	Peer                                   noise.PublicKey
}

// StartTunnel writes end's config and starts kind's tunnel program for
// it. It returns the process and the program's arguments for the report,
// with the run's temporary directory shown as $TMPDIR.
func StartTunnel(env *Env, bins *Bins, kind core.Kind, end End) (*Proc, []string, error) {
	conf := filepath.Join(env.Dir, end.Iface+".conf")
	text := fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = %s/24\nListenPort = 51820\nMTU = %d\n\n"+
		"[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = %s/32\n",
		end.Key, end.Inner, MTU, end.Peer, end.PeerOuter, end.PeerInner)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, nil, err
	}
	bin, args, penv := bins.WGPeer, []string{"--config", conf, "--interface", end.Iface, "--mtu", strconv.Itoa(MTU), "--uapi"}, []string(nil)
	if kind.Impl == core.ImplPipeGuard {
		bin = bins.Client
		args = []string{"standalone", "--config", conf, "--interface", end.Iface, "--state-dir", env.Dir, "--engine", kind.Engine}
		if kind.Unmanaged {
			args = append(args, "--queue-management", "off")
		}
		penv = []string{"PIPEGUARD_ID=pgbench-" + end.Iface}
	}
	shown := make([]string, len(args))
	for j, a := range args {
		shown[j] = strings.ReplaceAll(a, env.Dir, "$TMPDIR")
	}
	p, err := env.Start(end.NS, fmt.Sprintf("%s in %s", kind, end.NS), penv, bin, args...)
	return p, shown, err
}

// WaitUAPI waits until the tunnel p serves the UAPI socket of iface, which
// every tunnel program here opens once its tunnel is up.
func WaitUAPI(ctx context.Context, p *Proc, iface string) error {
	up := func() bool {
		c, err := net.Dial("unix", SocketPath(iface))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	return WaitFor(ctx, p, 15*time.Second, up)
}

// Pair is one tunnel under test, a process at each end of the
// namespaces' veth pair: start brings both up, handshake waits until
// traffic passes, stop ends them. Used by one goroutine.
type Pair struct {
	Env      *Env
	Bins     *Bins
	Kind     core.Kind
	Args     []string // end A's arguments
	Warnings []string
	A, B     *Proc
}

// Start writes both ends' configs and starts the tunnel programs, then
// waits for their UAPI sockets, which both open once the tunnel is up.
func (m *Pair) Start(ctx context.Context) error {
	keyA, err := noise.GeneratePrivateKey()
	if err != nil {
		return err
	}
	keyB, err := noise.GeneratePrivateKey()
	if err != nil {
		return err
	}
	ifA, ifB := m.Env.TunnelName("a"), m.Env.TunnelName("b")
	var procs [2]*Proc
	for i, end := range []End{
		{m.Env.A, ifA, InnerA, OuterB, InnerB, keyA, keyB.Public()},
		{m.Env.B, ifB, InnerB, OuterA, InnerA, keyB, keyA.Public()},
	} {
		var args []string
		if procs[i], args, err = StartTunnel(m.Env, m.Bins, m.Kind, end); err != nil {
			return err
		}
		if i == 0 {
			m.Args = args
		}
		m.A, m.B = procs[0], procs[1]
	}
	for i, ifc := range []string{ifA, ifB} {
		if err := WaitUAPI(ctx, procs[i], ifc); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops both ends with SIGTERM and notes any that did not exit 0.
func (m *Pair) Stop() {
	for _, p := range []*Proc{m.A, m.B} {
		if p == nil {
			continue
		}
		if code := p.Stop(StopGrace); code != 0 {
			m.Warnings = append(m.Warnings, fmt.Sprintf("%s exited with status %d after SIGTERM: %s",
				p.Name, code, LastLine(p.Out.String())))
		}
	}
}

// Handshake pings through the tunnel until a reply comes, which takes a
// handshake, for up to 10 s.
func (m *Pair) Handshake(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := RunIn(ctx, false, m.Env.A, "ping", "-c", "1", "-W", "1", InnerB)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%w: no ping reply through the tunnel within 10 s: %v: %s", core.ErrNetns, err, LastLine(string(out)))
		}
		if err := m.Alive(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Alive fails when either end has exited.
func (m *Pair) Alive() error {
	for _, p := range []*Proc{m.A, m.B} {
		if p.Exited() {
			return fmt.Errorf("%w: %s exited: %v\n%s", core.ErrNetns, p.Name, p.Err(), p.Out)
		}
	}
	return nil
}

// CPU is both ends' CPU time so far.
func (m *Pair) CPU() (time.Duration, error) {
	var sum time.Duration
	for _, p := range []*Proc{m.A, m.B} {
		d, err := ProcCPU(p.Pid())
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", core.ErrNetns, p.Name, err)
		}
		sum += d
	}
	return sum, nil
}
