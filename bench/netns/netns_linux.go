package netns

import (
	"context"
	"fmt"
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
	if err := env.StartIperfServer(ctx); err != nil {
		return nil, err
	}

	rep := &Report{MTU: nsenv.MTU, TCPSeconds: int(cfg.Duration / time.Second),
		PingIntervalMs: float64(pingInterval) / float64(time.Millisecond), PingIdleCount: cfg.pingIdleCount(),
		WireguardGoVersion: bins.WGVersion, Iperf3Version: nsenv.Iperf3Version(), PipeGuardRevision: bins.Revision}
	kinds, cases := core.Kinds(cfg.Engines), cfg.tcpCases()
	prog := cfg.Out.Progress(cfg.Repeat * len(kinds) * (1 + len(cases)))
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
	rep.Runs = summarizeNetns(kinds, args, cases, samples)
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
	what := m.Kind.String() + ": ping idle"
	m.prog.Begin(what)
	var err error
	if s.Idle, err = m.ping(ctx, m.cfg.pingIdleCount(), false); err != nil {
		return s, err
	}
	m.prog.End(what, fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", s.Idle.RTT().P50Ms, s.Idle.RTT().P99Ms))
	loaded := loadedCase(cases)
	for _, c := range cases {
		what := fmt.Sprintf("%s: %s", m.Kind, c)
		m.prog.Begin(what)
		ts, pr, err := m.tcp(ctx, c, c == loaded)
		if err != nil {
			return s, fmt.Errorf("%s: %w", c, err)
		}
		if c == loaded {
			s.Loaded = pr
		}
		s.TCP = append(s.TCP, ts)
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
	out, err := nsenv.RunIn(ctx, interrupt, m.Env.A, "ping", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64), "-W", "1", nsenv.InnerB)
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
// processes' CPU time around it; with withPing, a ping series runs during
// it, from half a second after its start to half a second before its end.
func (m *tunnelMeasurement) tcp(ctx context.Context, c tcpCase, withPing bool) (TCPSample, nsenv.PingResult, error) {
	secs := int(m.cfg.Duration / time.Second)
	args := []string{"-c", nsenv.InnerB, "-p", nsenv.IperfPort, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(c.Streams), "-J", "--connect-timeout", "5000"}
	if c.Direction == core.Inbound {
		args = append(args, "-R")
	}
	var bg *bgPing
	if withPing {
		const margin = 500 * time.Millisecond
		bg = m.startPing(ctx, margin, max(m.cfg.Duration-2*margin, margin))
		defer bg.stop()
	}
	var (
		res        nsenv.Iperf3Result
		begin      time.Time
		cpu0, cpu1 time.Duration
		err        error
	)
	for attempt := 1; ; attempt++ {
		if cpu0, err = m.CPU(); err != nil {
			return TCPSample{}, nsenv.PingResult{}, err
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
		return TCPSample{}, nsenv.PingResult{}, fmt.Errorf("%w (iperf3: %v)", perr, err)
	}
	wall := time.Since(begin)
	if cpu1, err = m.CPU(); err != nil {
		return TCPSample{}, nsenv.PingResult{}, err
	}
	s := TCPSample{Gbps: res.ReceivedGbps, Retransmits: res.Retransmits, Seconds: res.Seconds,
		WallSeconds: wall.Seconds(), CPUSeconds: (cpu1 - cpu0).Seconds()}
	var pr nsenv.PingResult
	if bg != nil {
		if pr, err = bg.stop(); err != nil {
			return s, pr, fmt.Errorf("ping under load: %w", err)
		}
	}
	return s, pr, m.Alive()
}

// bgPing is a ping series running beside a TCP run.
type bgPing struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the series has ended and r, err are set
	r      nsenv.PingResult
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
func (bp *bgPing) stop() (nsenv.PingResult, error) {
	bp.cancel()
	<-bp.done
	return bp.r, bp.err
}

// netnsUsable checks what the mode needs: root, iproute2, iperf3, ping and
// /dev/net/tun.
func netnsUsable() error { return nsenv.Usable("ip", "iperf3", "ping") }
