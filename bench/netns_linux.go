package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pipeguard/noise"
)

// iperfPort is the iperf3 server's port in namespace B.
const iperfPort = "5201"

// runNetns is the namespace mode: PipeGuard with each engine, then
// wireguard-go, each a tunnel between two network namespaces joined by a
// veth pair, measured by iperf3 and ping run in those namespaces. It
// builds the tunnel programs once, removes what crashed runs left behind,
// and removes everything it made before it returns, also when ctx ends.
func runNetns(ctx context.Context, cfg *Config) (_ *NetnsReport, err error) {
	nb, err := openNsBench(ctx, cfg, netnsUsable)
	if err != nil {
		return nil, err
	}
	defer closeKeep(&err, nb.close)
	bins, env := nb.bins, nb.env
	if err := env.startIperfServer(ctx); err != nil {
		return nil, err
	}

	rep := &NetnsReport{MTU: netnsMTU, TCPSeconds: int(cfg.TCPDuration / time.Second),
		PingIntervalMs: float64(pingInterval) / float64(time.Millisecond), PingIdleCount: cfg.pingIdleCount(),
		WireguardGoVersion: bins.wgVersion, Iperf3Version: iperf3Version(), PipeGuardRevision: bins.revision}
	kinds, cases := cfg.netnsKinds(), cfg.tcpCases()
	prog := newProgress(cfg.Progress, cfg.ProgressTTY, cfg.Repeat*len(kinds)*(1+len(cases)))
	defer prog.finish()
	samples := make([][]netnsSample, len(kinds))
	args := make([][]string, len(kinds))
	for r := range cfg.Repeat {
		// Each repeat starts with another tunnel, so that a slow spell of
		// the machine does not always fall on the same one.
		for j := range kinds {
			i := (j + r) % len(kinds)
			m := &tunnelMeasurement{env: env, bins: bins, kind: kinds[i], cfg: cfg, prog: prog}
			s, err := m.run(ctx, cases)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%s: %w", kinds[i], err)
			}
			samples[i] = append(samples[i], s)
			args[i] = m.args
			rep.Warnings = append(rep.Warnings, m.warnings...)
		}
	}
	rep.Runs = summarizeNetns(kinds, args, cases, samples)
	return rep, nil
}

// note writes a line about the run to the progress writer, if any.
func note(cfg *Config, format string, a ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "bench: "+format+"\n", a...)
	}
}

// tunnelMeasurement is one repeat of one tunnel: bring up both ends,
// measure, stop them.
type tunnelMeasurement struct {
	env      *nsEnv
	bins     *tunnelBins
	kind     tunnelKind
	cfg      *Config
	prog     *progress
	args     []string // end A's arguments
	warnings []string
	a, b     *nsProc
}

func (m *tunnelMeasurement) run(ctx context.Context, cases []tcpCase) (netnsSample, error) {
	var s netnsSample
	if err := m.start(ctx); err != nil {
		return s, err
	}
	defer m.stop()
	if err := m.handshake(ctx); err != nil {
		return s, err
	}
	what := m.kind.String() + ": ping idle"
	m.prog.begin(what)
	var err error
	if s.Idle, err = m.ping(ctx, m.cfg.pingIdleCount(), false); err != nil {
		return s, err
	}
	m.prog.end(what, fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", s.Idle.RTT().P50Ms, s.Idle.RTT().P99Ms))
	loaded := loadedCase(cases)
	for _, c := range cases {
		what := fmt.Sprintf("%s: %s", m.kind, c)
		m.prog.begin(what)
		ts, pr, err := m.tcp(ctx, c, c == loaded)
		if err != nil {
			return s, fmt.Errorf("%s: %w", c, err)
		}
		if c == loaded {
			s.Loaded = pr
		}
		s.TCP = append(s.TCP, ts)
		m.prog.end(what, fmt.Sprintf("%.2f Gbit/s", ts.Gbps))
	}
	for _, p := range []*nsProc{m.a, m.b} {
		rss, err := procPeakRSS(p.pid())
		if err != nil {
			return s, fmt.Errorf("%w: %s: %v", ErrNetns, p.name, err)
		}
		s.PeakRSS = max(s.PeakRSS, rss)
	}
	return s, nil
}

// start writes both ends' configs and starts the tunnel programs, then
// waits for their UAPI sockets, which both open once the tunnel is up.
func (m *tunnelMeasurement) start(ctx context.Context) error {
	keyA, err := noise.GeneratePrivateKey()
	if err != nil {
		return err
	}
	keyB, err := noise.GeneratePrivateKey()
	if err != nil {
		return err
	}
	ifA, ifB := m.env.tunnelName("a"), m.env.tunnelName("b")
	var procs [2]*nsProc
	for i, end := range []tunnelEnd{
		{m.env.a, ifA, innerA, outerB, innerB, keyA, keyB.Public()},
		{m.env.b, ifB, innerB, outerA, innerA, keyB, keyA.Public()},
	} {
		var args []string
		if procs[i], args, err = startTunnel(m.env, m.bins, m.kind, end); err != nil {
			return err
		}
		if i == 0 {
			m.args = args
		}
		m.a, m.b = procs[0], procs[1]
	}
	for i, ifc := range []string{ifA, ifB} {
		if err := waitUAPI(ctx, procs[i], ifc); err != nil {
			return err
		}
	}
	return nil
}

// tunnelEnd is one end of a tunnel under test: its namespace, interface
// and keys, and the peer it talks to.
type tunnelEnd struct {
	ns, iface, inner, peerOuter, peerInner string
	key                                    noise.PrivateKey
	peer                                   noise.PublicKey
}

// startTunnel writes end's config and starts kind's tunnel program for
// it. It returns the process and the program's arguments for the report,
// with the run's temporary directory shown as $TMPDIR.
func startTunnel(env *nsEnv, bins *tunnelBins, kind tunnelKind, end tunnelEnd) (*nsProc, []string, error) {
	conf := filepath.Join(env.dir, end.iface+".conf")
	text := fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = %s/24\nListenPort = 51820\nMTU = %d\n\n"+
		"[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = %s/32\n",
		end.key, end.inner, netnsMTU, end.peer, end.peerOuter, end.peerInner)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, nil, err
	}
	bin, args, penv := bins.wgpeer, []string{"--config", conf, "--interface", end.iface, "--mtu", strconv.Itoa(netnsMTU), "--uapi"}, []string(nil)
	if kind.Impl == ImplPipeGuard {
		bin = bins.client
		args = []string{"standalone", "--config", conf, "--interface", end.iface, "--state-dir", env.dir, "--engine", kind.Engine}
		penv = []string{"PIPEGUARD_ID=pgbench-" + end.iface}
	}
	shown := make([]string, len(args))
	for j, a := range args {
		shown[j] = strings.ReplaceAll(a, env.dir, "$TMPDIR")
	}
	p, err := env.start(end.ns, fmt.Sprintf("%s in %s", kind, end.ns), penv, bin, args...)
	return p, shown, err
}

// waitUAPI waits until the tunnel p serves the UAPI socket of iface, which
// every tunnel program here opens once its tunnel is up.
func waitUAPI(ctx context.Context, p *nsProc, iface string) error {
	up := func() bool {
		c, err := net.Dial("unix", socketPath(iface))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	return waitFor(ctx, p, 15*time.Second, up)
}

// stop stops both ends with SIGTERM and notes any that did not exit 0.
func (m *tunnelMeasurement) stop() {
	for _, p := range []*nsProc{m.a, m.b} {
		if p == nil {
			continue
		}
		if code := p.stop(stopGrace); code != 0 {
			m.warnings = append(m.warnings, fmt.Sprintf("%s exited with status %d after SIGTERM: %s",
				p.name, code, lastLine(p.out.String())))
		}
	}
}

// handshake pings through the tunnel until a reply comes, which takes a
// handshake, for up to 10 s.
func (m *tunnelMeasurement) handshake(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := runIn(ctx, false, m.env.a, "ping", "-c", "1", "-W", "1", innerB)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%w: no ping reply through the tunnel within 10 s: %v: %s", ErrNetns, err, lastLine(string(out)))
		}
		if err := m.alive(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alive fails when either end has exited.
func (m *tunnelMeasurement) alive() error {
	for _, p := range []*nsProc{m.a, m.b} {
		if p.exited() {
			return fmt.Errorf("%w: %s exited: %v\n%s", ErrNetns, p.name, p.err, p.out)
		}
	}
	return nil
}

// ping sends count echo requests from A to B's tunnel address; with
// interrupt, the series may be cut short by ending ctx (see runIn).
func (m *tunnelMeasurement) ping(ctx context.Context, count int, interrupt bool) (PingResult, error) {
	out, err := runIn(ctx, interrupt, m.env.a, "ping", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64), "-W", "1", innerB)
	r, perr := ParsePing(out)
	if perr != nil {
		return r, fmt.Errorf("%w (ping: %v)", perr, err)
	}
	if r.Received == 0 {
		return r, fmt.Errorf("%w: no ping replies", ErrNetns)
	}
	return r, nil
}

// tcp runs iperf3 from A to B's server for case c, reading the tunnel
// processes' CPU time around it; with withPing, a ping series runs during
// it, from half a second after its start to half a second before its end.
func (m *tunnelMeasurement) tcp(ctx context.Context, c tcpCase, withPing bool) (TCPSample, PingResult, error) {
	secs := int(m.cfg.TCPDuration / time.Second)
	args := []string{"-c", innerB, "-p", iperfPort, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(c.Streams), "-J", "--connect-timeout", "5000"}
	if c.Direction == Inbound {
		args = append(args, "-R")
	}
	var bg *bgPing
	if withPing {
		const margin = 500 * time.Millisecond
		bg = m.startPing(ctx, margin, max(m.cfg.TCPDuration-2*margin, margin))
		defer bg.stop()
	}
	var (
		res        Iperf3Result
		begin      time.Time
		cpu0, cpu1 time.Duration
		err        error
	)
	for attempt := 1; ; attempt++ {
		if cpu0, err = m.cpu(); err != nil {
			return TCPSample{}, PingResult{}, err
		}
		begin = time.Now()
		out, err := runIn(ctx, false, m.env.a, "iperf3", args...)
		var perr error
		if res, perr = ParseIperf3(out); perr == nil {
			break
		}
		// The server takes a moment between tests; a client that came too
		// early is told it is busy.
		if attempt < 3 && strings.Contains(perr.Error(), "busy") && ctx.Err() == nil {
			time.Sleep(300 * time.Millisecond)
			continue
		}
		return TCPSample{}, PingResult{}, fmt.Errorf("%w (iperf3: %v)", perr, err)
	}
	wall := time.Since(begin)
	if cpu1, err = m.cpu(); err != nil {
		return TCPSample{}, PingResult{}, err
	}
	s := TCPSample{Gbps: res.ReceivedGbps, Retransmits: res.Retransmits, Seconds: res.Seconds,
		WallSeconds: wall.Seconds(), CPUSeconds: (cpu1 - cpu0).Seconds()}
	var pr PingResult
	if bg != nil {
		if pr, err = bg.stop(); err != nil {
			return s, pr, fmt.Errorf("ping under load: %w", err)
		}
	}
	return s, pr, m.alive()
}

// bgPing is a ping series running beside a TCP run.
type bgPing struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the series has ended and r, err are set
	r      PingResult
	err    error
}

// startPing starts a series after delay that runs for length at most.
// It is stopped by time, not by a count: iputils paces -i 0.01 at about
// 16 ms on this kernel, so a count would outlast the TCP run.
func (m *tunnelMeasurement) startPing(ctx context.Context, delay, length time.Duration) *bgPing {
	ctx, cancel := context.WithCancel(ctx)
	bp := &bgPing{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(bp.done)
		select {
		case <-ctx.Done():
			bp.err = ctx.Err()
			return
		case <-time.After(delay):
		}
		sctx, stop := context.WithTimeout(ctx, length)
		defer stop()
		bp.r, bp.err = m.ping(sctx, 2*int(length/pingInterval)+10, true)
	}()
	return bp
}

// stop ends the series if it still runs, waits for it and returns it. It
// may be called again.
func (bp *bgPing) stop() (PingResult, error) {
	bp.cancel()
	<-bp.done
	return bp.r, bp.err
}

// cpu is both ends' CPU time so far.
func (m *tunnelMeasurement) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, p := range []*nsProc{m.a, m.b} {
		d, err := procCPU(p.pid())
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrNetns, p.name, err)
		}
		sum += d
	}
	return sum, nil
}
