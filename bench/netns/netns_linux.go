package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

// Measure is the namespace mode: PipeGuard with each engine, then
// wireguard-go, each a tunnel between two network namespaces joined by a
// veth pair, measured by iperf3 and ping run in those namespaces. It
// builds the tunnel programs once, removes what crashed runs left behind,
// and removes everything it made before it returns, also when ctx ends.
func Measure(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg = cfg.WithDefaults()
	nb, err := nsenv.Open(ctx, cfg.Out, netnsUsable)
	if err != nil {
		return nil, err
	}
	defer nsenv.CloseKeep(&err, nb.Close)
	bins, env := nb.Bins, nb.Env
	if err := env.SetCongestionControl(cfg.CongestionControl); err != nil {
		return nil, err
	}
	if err := env.StartIperfServer(ctx); err != nil {
		return nil, err
	}
	echo, err := startEcho(env.B, netip.AddrPortFrom(netip.IPv4Unspecified(), probePort))
	if err != nil {
		return nil, err
	}
	defer echo.close()

	rep := &Report{MTU: nsenv.MTU, TCPSeconds: int(cfg.Duration / time.Second),
		PingIntervalMs: float64(pingInterval) / float64(time.Millisecond), PingIdleCount: cfg.pingIdleCount(),
		WireguardGoVersion: bins.WGVersion, Iperf3Version: nsenv.Iperf3Version(), PipeGuardRevision: bins.Revision,
		CongestionControl: cfg.CongestionControl}
	kinds, cases := cfg.kinds(), cfg.tcpCases()
	prog := cfg.Out.Progress(cfg.Repeat * len(kinds) * (2 + len(cases)))
	defer prog.Finish()
	samples := make([][]netnsSample, len(kinds))
	args := make([][]string, len(kinds))
	for r := range cfg.Repeat {
		// Each repeat starts with another tunnel, so that a slow spell of
		// the machine does not always fall on the same one.
		for j := range kinds {
			i := (j + r) % len(kinds)
			m := &tunnelMeasurement{Pair: &nsenv.Pair{Env: env, Bins: bins, Kind: kinds[i]}, cfg: &cfg, prog: prog}
			s, err := m.run(ctx, cases)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%s: %w", kinds[i], err)
			}
			samples[i] = append(samples[i], s)
			args[i] = m.Args
			rep.Warnings = append(rep.Warnings, m.Warnings...)
		}
	}
	rep.Runs = summarizeNetns(kinds, args, cases, samples, cfg.latencyStreams())
	return rep, nil
}

// tunnelMeasurement is one repeat of one tunnel: bring up both ends,
// measure, stop them.
type tunnelMeasurement struct {
	*nsenv.Pair
	cfg  *Config
	prog *core.Progress
}

func (m *tunnelMeasurement) run(ctx context.Context, cases []tcpCase) (netnsSample, error) {
	var s netnsSample
	if err := m.Start(ctx); err != nil {
		return s, err
	}
	defer m.Stop()
	if err := m.Handshake(ctx); err != nil {
		return s, err
	}
	what := m.Kind.String() + ": ping and probe idle"
	m.prog.Begin(what)
	count := m.cfg.pingIdleCount()
	idleProbe := m.startProbe(ctx, nsenv.InnerB, 0, time.Duration(count)*pingInterval)
	idlePathProbe := m.startProbe(ctx, nsenv.OuterB, 0, time.Duration(count)*pingInterval)
	idlePath := m.startPing(ctx, nsenv.OuterB, 0, time.Duration(count)*pingInterval)
	var err error
	s.Idle, err = m.ping(ctx, count, false)
	if err != nil {
		idleProbe.abort()
		idlePathProbe.abort()
	}
	probe, perr := idleProbe.wait()
	pathProbe, ppatherr := idlePathProbe.wait()
	path, patherr := idlePath.stop()
	if err = errors.Join(err, perr, ppatherr, patherr); err != nil {
		return s, err
	}
	s.Latency[0] = latSample{Ping: s.Idle, Probe: probe, Path: path, PathProbe: pathProbe}
	m.prog.End(what, fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", s.Idle.RTT().P50Ms, s.Idle.RTT().P99Ms))
	loaded, streams := loadedCase(cases), m.cfg.latencyStreams()
	for _, c := range append(cases, tcpCase{core.Both, streams}) {
		what := fmt.Sprintf("%s: %s", m.Kind, c)
		m.prog.Begin(what)
		row := slices.Index(latencyLoads[:], c.Direction)
		ts, lat, err := m.tcp(ctx, c, c.Streams == streams)
		if err != nil {
			return s, fmt.Errorf("%s: %w", c, err)
		}
		if c == loaded {
			s.Loaded = lat.Ping
		}
		if c.Streams == streams && row > 0 {
			lat.Gbps = ts.Gbps
			s.Latency[row] = lat
		}
		if c.Direction != core.Both {
			s.TCP = append(s.TCP, ts)
		}
		m.prog.End(what, fmt.Sprintf("%.2f Gbit/s", ts.Gbps))
	}
	for _, p := range []*nsenv.Proc{m.A, m.B} {
		rss, err := nsenv.ProcPeakRSS(p.Pid())
		if err != nil {
			return s, fmt.Errorf("%w: %s: %v", core.ErrNetns, p.Name, err)
		}
		s.PeakRSS = max(s.PeakRSS, rss)
	}
	return s, nil
}

// ping sends count echo requests from A to B's tunnel address; with
// interrupt, the series may be cut short by ending ctx (see runIn).
func (m *tunnelMeasurement) ping(ctx context.Context, count int, interrupt bool) (nsenv.PingResult, error) {
	return m.pingTo(ctx, nsenv.InnerB, count, interrupt)
}

// pingTo is ping to the address to: B's tunnel address, or its outer one
// for the path beside the tunnel.
func (m *tunnelMeasurement) pingTo(ctx context.Context, to string, count int, interrupt bool) (nsenv.PingResult, error) {
	out, err := nsenv.RunIn(ctx, interrupt, m.Env.A, "ping", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64), "-W", "1", to)
	r, perr := nsenv.ParsePing(out)
	if perr != nil {
		return r, fmt.Errorf("%w (ping: %v)", perr, err)
	}
	if r.Received == 0 {
		return r, fmt.Errorf("%w: no ping replies", core.ErrNetns)
	}
	return r, nil
}

// tcp runs iperf3 from A to B's server for case c, reading the tunnel
// processes' CPU time around it; with series, a ping series and a probe
// series run during it, from half a second after its start to half a
// second before its end.
func (m *tunnelMeasurement) tcp(ctx context.Context, c tcpCase, series bool) (TCPSample, latSample, error) {
	secs := int(m.cfg.Duration / time.Second)
	args := []string{"-c", nsenv.InnerB, "-p", nsenv.IperfPort, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(c.Streams), "-J", "--connect-timeout", "5000"}
	switch c.Direction {
	case core.Inbound:
		args = append(args, "-R")
	case core.Both:
		args = append(args, "--bidir")
	}
	var bg, bgPath *bgPing
	var bp, bpPath *bgProbe
	if series {
		const margin = 500 * time.Millisecond
		length := max(m.cfg.Duration-2*margin, margin)
		bg = m.startPing(ctx, nsenv.InnerB, margin, length)
		defer bg.stop()
		bgPath = m.startPing(ctx, nsenv.OuterB, margin, length)
		defer bgPath.stop()
		bp = m.startProbe(ctx, nsenv.InnerB, margin, length)
		defer bp.abort()
		bpPath = m.startProbe(ctx, nsenv.OuterB, margin, length)
		defer bpPath.abort()
	}
	var (
		res        nsenv.Iperf3Result
		begin      time.Time
		cpu0, cpu1 time.Duration
		err        error
	)
	for attempt := 1; ; attempt++ {
		if cpu0, err = m.CPU(); err != nil {
			return TCPSample{}, latSample{}, err
		}
		begin = time.Now()
		out, err := nsenv.RunIn(ctx, false, m.Env.A, "iperf3", args...)
		var perr error
		if res, perr = nsenv.ParseIperf3(out); perr == nil {
			break
		}
		// The server takes a moment between tests; a client that came too
		// early is told it is busy.
		if attempt < 3 && strings.Contains(perr.Error(), "busy") && ctx.Err() == nil {
			time.Sleep(300 * time.Millisecond)
			continue
		}
		return TCPSample{}, latSample{}, fmt.Errorf("%w (iperf3: %v)", perr, err)
	}
	wall := time.Since(begin)
	if cpu1, err = m.CPU(); err != nil {
		return TCPSample{}, latSample{}, err
	}
	s := TCPSample{Gbps: res.TotalGbps(), Retransmits: res.Retransmits + res.ReverseRetransmits, Seconds: res.Seconds,
		WallSeconds: wall.Seconds(), CPUSeconds: (cpu1 - cpu0).Seconds()}
	var lat latSample
	if bg != nil {
		if lat.Ping, err = bg.stop(); err != nil {
			return s, lat, fmt.Errorf("ping under load: %w", err)
		}
		if lat.Path, err = bgPath.stop(); err != nil {
			return s, lat, fmt.Errorf("ping beside the tunnel under load: %w", err)
		}
		if lat.Probe, err = bp.wait(); err != nil {
			return s, lat, fmt.Errorf("probe under load: %w", err)
		}
		if lat.PathProbe, err = bpPath.wait(); err != nil {
			return s, lat, fmt.Errorf("probe beside the tunnel under load: %w", err)
		}
	}
	return s, lat, m.Alive()
}

// bgPing is a ping series running beside a TCP run.
type bgPing struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the series has ended and r, err are set
	r      nsenv.PingResult
	err    error
}

// startPing starts a series to the address to after delay that runs for
// length at most. It is stopped by time, not by a count: iputils paces
// -i 0.01 at about 16 ms on this kernel, so a count would outlast the
// TCP run.
func (m *tunnelMeasurement) startPing(ctx context.Context, to string, delay, length time.Duration) *bgPing {
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
		bp.r, bp.err = m.pingTo(sctx, to, 2*int(length/pingInterval)+10, true)
	}()
	return bp
}

// stop ends the series if it still runs, waits for it and returns it. It
// may be called again.
func (bp *bgPing) stop() (nsenv.PingResult, error) {
	bp.cancel()
	<-bp.done
	return bp.r, bp.err
}

// bgProbe is a probe series running beside a TCP run (or the idle ping).
type bgProbe struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the series has ended and r, err are set
	r      probeResult
	err    error
}

// startProbe starts a probe series from A to the echo server in B at
// address addr (nsenv.InnerB: through the tunnel; nsenv.OuterB: beside
// it), after delay, for length.
func (m *tunnelMeasurement) startProbe(ctx context.Context, addr string, delay, length time.Duration) *bgProbe {
	ctx, cancel := context.WithCancel(ctx)
	bp := &bgProbe{cancel: cancel, done: make(chan struct{})}
	to := netip.AddrPortFrom(netip.MustParseAddr(addr), probePort)
	go func() {
		defer close(bp.done)
		bp.r, bp.err = runProbe(ctx, m.Env.A, to, delay, length)
	}()
	return bp
}

// wait waits for the series to end on its own (after its length and the
// wait for late answers) and returns it.
func (bp *bgProbe) wait() (probeResult, error) {
	<-bp.done
	bp.cancel()
	return bp.r, bp.err
}

// abort ends the series now, if it still runs. It may be called again.
func (bp *bgProbe) abort() {
	bp.cancel()
	<-bp.done
}

// netnsUsable checks what the mode needs: root, iproute2, iperf3, ping and
// /dev/net/tun.
func netnsUsable() error { return nsenv.Usable("ip", "iperf3", "ping") }
