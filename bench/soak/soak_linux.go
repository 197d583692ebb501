package soak

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
	"syscall"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/noise"
	"pipeguard/stages"
)

// soakMetricsAddr is each client's metrics endpoint, on the loopback of
// its own namespace (given through PIPEGUARD_METRICS_ADDR).
const soakMetricsAddr = "127.0.0.1:9586"

// soakMarker starts the peer block the soak adds to a config file and
// takes out again.
const soakMarker = "# added by the bench's soak mode"

// soakUsable checks what the soak mode needs: root, /dev/net/tun,
// iproute2, iperf3, ping and wg.
func soakUsable() error {
	if err := nsenv.Usable("ip", "iperf3", "ping"); err != nil {
		return err
	}
	if _, err := exec.LookPath("wg"); err != nil {
		return fmt.Errorf("%w: no wg (run as root; scripts/setup.sh installs wireguard-tools)", core.ErrNetnsUnavailable)
	}
	return nil
}

// soakEnd is one of the two PipeGuard processes under watch.
type soakEnd struct {
	name      string // "A" or "B"
	n         int    // 1 or 2: numbers the prefixes made up for it
	ns, iface string
	conf      string // its config file, which the reloads change
	proc      *nsenv.Proc
	peer      string // its real peer's public key, as wg prints it
	peerInner string // that peer's tunnel address
	dummy     string // the public key of the peer a reload added, while it is in the file
	wgSet     bool   // whether the last wg set added the keepalive and the prefix
}

// soakRun is one soak. Used by one goroutine.
type soakRun struct {
	cfg   Config
	ends  []*soakEnd
	rep   *Report
	first time.Time // of the first sample: events and samples count from it
}

// Measure runs the soak mode: two PipeGuard ends (the pipeline engine) in
// network namespaces, TCP both ways and ping for cfg.Duration after a
// warm-up, a SIGHUP reload and a wg set peer change at each end every
// cfg.Every, and a sample of each process every soakSampleEvery. It
// builds the client, removes what crashed runs left, and removes all it
// made before it returns, also when ctx ends.
func Measure(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg = cfg.WithDefaults()
	nb, err := nsenv.Open(ctx, cfg.Out, soakUsable)
	if err != nil {
		return nil, err
	}
	defer nsenv.CloseKeep(&err, nb.Close)
	bins, env := nb.Bins, nb.Env
	env.ExtraEnv = []string{"PIPEGUARD_METRICS_ADDR=" + soakMetricsAddr}
	if err := env.StartIperfServer(ctx); err != nil {
		return nil, err
	}
	plan := planSoak(cfg.Duration, cfg.Every)
	prog := cfg.Out.Progress(len(plan.samples))
	defer prog.Finish()
	m := &nsenv.Pair{Env: env, Bins: bins, Kind: core.Kind{Impl: core.ImplPipeGuard, Engine: string(stages.EnginePipeline)}}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			m.Stop()
		}
	}()
	if err := m.Handshake(ctx); err != nil {
		return nil, err
	}
	r := &soakRun{cfg: cfg, rep: &Report{
		DurationSeconds: cfg.Duration.Seconds(), WarmupSeconds: soakWarmup.Seconds(),
		SampleEverySeconds: soakSampleEvery.Seconds(), ChangeEverySeconds: cfg.Every.Seconds(),
		MTU: nsenv.MTU, Args: m.Args, Env: env.ExtraEnv, PipeGuardRevision: bins.Revision, Iperf3Version: nsenv.Iperf3Version(),
		Ends: []string{"A", "B"},
	}}
	ifaces := env.Ifaces[len(env.Ifaces)-2:] // the two m.start made, A's first
	for i, e := range []struct {
		ns, peerInner string
		p             *nsenv.Proc
	}{{env.A, nsenv.InnerB, m.A}, {env.B, nsenv.InnerA, m.B}} {
		end := &soakEnd{name: r.rep.Ends[i], n: i + 1, ns: e.ns, iface: ifaces[i], proc: e.p, peerInner: e.peerInner,
			conf: filepath.Join(env.Dir, ifaces[i]+".conf")}
		out, err := wgCmd(ctx, "show", end.iface, "peers")
		if err != nil {
			return nil, err
		}
		if end.peer = strings.TrimSpace(out); end.peer == "" || strings.Contains(end.peer, "\n") {
			return nil, fmt.Errorf("%w: %s: expected one peer, wg show says %q", core.ErrNetns, end.iface, out)
		}
		r.ends = append(r.ends, end)
	}
	if err := r.run(ctx, env, plan, prog, m); err != nil {
		return nil, err
	}
	stopped = true
	m.Stop()
	r.rep.Warnings = append(r.rep.Warnings, m.Warnings...)
	r.rep.summarizeSoak()
	return r.rep, nil
}

// run starts the traffic, waits out the warm-up, then samples and
// changes the tunnels as plan says, and collects the traffic's figures.
func (r *soakRun) run(ctx context.Context, env *nsenv.Env, plan soakPlan, prog *core.Progress, m *nsenv.Pair) error {
	// Ends iperf3 and ping if the soak fails part-way.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type output struct {
		out []byte
		err error
	}
	// iperf3 runs a little past the last sample, so that it is still
	// running then; it stops by itself, so that its report is whole.
	secs := int((soakWarmup + r.cfg.Duration + 3*time.Second + time.Second - 1) / time.Second)
	iperfDone := make(chan output, 1)
	go func() {
		out, err := nsenv.RunIn(ctx, false, env.A, "iperf3", "-c", nsenv.InnerB, "-p", nsenv.IperfPort, "--bidir", "-t", strconv.Itoa(secs),
			"-i", "0", "-J", "--connect-timeout", "5000")
		iperfDone <- output{out, err}
	}()
	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	pingDone := make(chan output, 1)
	go func() {
		out, err := nsenv.RunIn(pingCtx, true, env.A, "ping", "-i", strconv.FormatFloat(soakPingInterval.Seconds(), 'f', -1, 64), "-W", "1", nsenv.InnerB)
		pingDone <- output{out, err}
	}()
	var iperf *output // set when iperf3 has ended
	wait := func(until time.Time) error {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case o := <-iperfDone:
				iperf = &o
				if _, err := parseIperf3Bidir(o.out); err != nil {
					return fmt.Errorf("%w: iperf3 --bidir ended early: %v (%v)", core.ErrNetns, err, o.err)
				}
				r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("iperf3 ended %.1f s into the soak, before its last sample", time.Since(r.first).Seconds()))
				iperfDone = nil // a nil channel blocks: wait for the timer only
			case <-time.After(time.Until(until)):
				return nil
			}
		}
	}
	if err := wait(time.Now().Add(soakWarmup)); err != nil {
		return err
	}
	r.first = time.Now()
	changes := slices.Clone(plan.changes)
	for i, at := range plan.samples {
		// Changes due before this sample come first.
		for len(changes) > 0 && changes[0] < at {
			if err := wait(r.first.Add(changes[0])); err != nil {
				return err
			}
			changes = changes[1:]
			r.change(ctx)
		}
		what := fmt.Sprintf("soak: sample %d of %d at %s", i+1, len(plan.samples), core.FmtMinSec(at))
		prog.Begin(what)
		if err := wait(r.first.Add(at)); err != nil {
			return err
		}
		if err := m.Alive(); err != nil {
			return err
		}
		s, err := r.sample(ctx)
		if err != nil {
			return err
		}
		r.rep.Samples = append(r.rep.Samples, s)
		prog.End(what, soakProgress(r.rep, s))
	}
	stopPing()
	po := <-pingDone
	ping, err := nsenv.ParsePing(po.out)
	if err != nil {
		return fmt.Errorf("%w (ping: %v)", err, po.err)
	}
	r.rep.Ping = ping.RTT()
	if iperf == nil {
		o := <-iperfDone
		iperf = &o
	}
	if r.rep.TCP, err = parseIperf3Bidir(iperf.out); err != nil {
		return fmt.Errorf("%w (iperf3: %v)", err, iperf.err)
	}
	return m.Alive()
}

// soakProgress is a sample in a few words, for the progress line.
func soakProgress(r *Report, s Sample) string {
	var rss, gor []string
	for i, e := range s.Ends {
		rss = append(rss, fmt.Sprintf("%s %.1f", r.Ends[i], mib(e.RSSBytes)))
		gor = append(gor, fmt.Sprintf("%s %d", r.Ends[i], e.Goroutines))
	}
	return fmt.Sprintf("RSS MiB %s; goroutines %s; %d changes", strings.Join(rss, ", "), strings.Join(gor, ", "), len(r.Events))
}

// sample reads every end's resident set and metrics.
func (r *soakRun) sample(ctx context.Context) (Sample, error) {
	s := Sample{AtSeconds: time.Since(r.first).Seconds()}
	for _, e := range r.ends {
		rss, err := nsenv.ProcRSS(e.proc.Pid())
		if err != nil {
			return s, fmt.Errorf("%w: %s: %v", core.ErrNetns, e.proc.Name, err)
		}
		text, err := nsenv.HTTPGetIn(ctx, e.ns, "http://"+soakMetricsAddr+"/metrics")
		if err != nil {
			return s, fmt.Errorf("%w: metrics of %s: %v", core.ErrNetns, e.proc.Name, err)
		}
		mt, err := parseSoakMetrics(text)
		if err != nil {
			return s, fmt.Errorf("%s: %w", e.proc.Name, err)
		}
		s.Ends = append(s.Ends, EndStat{RSSBytes: rss, Goroutines: mt.goroutines, PanicDrops: mt.panicDrops,
			StageRestarts: mt.restarts, RxBytes: mt.rxBytes, TxBytes: mt.txBytes,
			HeapBytes: mt.heap, HeapGoalBytes: mt.heapGoal, GCCycles: mt.gcCycles})
	}
	return s, nil
}

// change reloads every end with SIGHUP, then changes its peer with wg
// set, and records both.
func (r *soakRun) change(ctx context.Context) {
	for _, e := range r.ends {
		r.rep.Events = append(r.rep.Events, r.reload(ctx, e), r.wgSet(ctx, e))
	}
}

// reload adds a made-up peer to e's config file, or takes out the one it
// added last time, sends SIGHUP and waits for wg show to list the peers
// the file names: the reload adds or removes a peer and its route.
func (r *soakRun) reload(ctx context.Context, e *soakEnd) Event {
	ev := Event{AtSeconds: time.Since(r.first).Seconds(), End: e.name, Kind: soakReload}
	fail := func(err error) Event { ev.Error = err.Error(); return ev }
	b, err := os.ReadFile(e.conf)
	if err != nil {
		return fail(err)
	}
	text, _, _ := strings.Cut(string(b), soakMarker)
	key, present := e.dummy, false
	if key != "" {
		ev.What = "peer " + key[:8] + " removed"
		e.dummy = ""
	} else {
		k, err := noise.GeneratePrivateKey()
		if err != nil {
			return fail(err)
		}
		key, present = k.Public().String(), true
		prefix := fmt.Sprintf("10.203.%d.0/24", e.n)
		text += fmt.Sprintf("%s\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\n", soakMarker, key, prefix)
		ev.What = fmt.Sprintf("peer %s added, AllowedIPs %s", key[:8], prefix)
		e.dummy = key
	}
	// A new file renamed into place: the client never reads half of one.
	tmp := e.conf + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, e.conf); err != nil {
		return fail(err)
	}
	if err := e.proc.Signal(syscall.SIGHUP); err != nil {
		return fail(err)
	}
	err = waitWG(ctx, func() (bool, error) {
		out, err := wgCmd(ctx, "show", e.iface, "peers")
		return strings.Contains(out, key) == present, err
	})
	if err != nil {
		return fail(err)
	}
	ev.Applied = true
	return ev
}

// wgSet changes e's real peer with wg set, through the UAPI's peer-change
// path: in turn, a persistent keepalive and a second allowed prefix, then
// neither. Traffic to the peer's own address goes on throughout.
func (r *soakRun) wgSet(ctx context.Context, e *soakEnd) Event {
	ev := Event{AtSeconds: time.Since(r.first).Seconds(), End: e.name, Kind: soakWGSet}
	prefix := fmt.Sprintf("10.204.%d.0/24", e.n)
	on := !e.wgSet
	keepalive, ips := "off", e.peerInner+"/32"
	ev.What = "persistent-keepalive off, allowed-ips -" + prefix
	if on {
		keepalive, ips = "25", ips+","+prefix
		ev.What = "persistent-keepalive 25, allowed-ips +" + prefix
	}
	if _, err := wgCmd(ctx, "set", e.iface, "peer", e.peer, "persistent-keepalive", keepalive, "allowed-ips", ips); err != nil {
		ev.Error = err.Error()
		return ev
	}
	e.wgSet = on
	err := waitWG(ctx, func() (bool, error) {
		ka, err := wgCmd(ctx, "show", e.iface, "persistent-keepalive")
		if err != nil {
			return false, err
		}
		allowed, err := wgCmd(ctx, "show", e.iface, "allowed-ips")
		return strings.Contains(ka, "\t"+keepalive) && strings.Contains(allowed, prefix) == on, err
	})
	if err != nil {
		ev.Error = err.Error()
		return ev
	}
	ev.Applied = true
	return ev
}

// waitWG polls ok every 50 ms for up to soakChangeWait.
func waitWG(ctx context.Context, ok func() (bool, error)) error {
	deadline := time.Now().Add(soakChangeWait)
	for {
		done, err := ok()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("not shown by wg show within %v", soakChangeWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wgCmd runs wg (on the host: the UAPI sockets are in the host's
// /var/run/wireguard) and returns its standard output.
func wgCmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "wg", args...)
	var stderr nsenv.TailBuffer
	stderr.Max = 4 << 10
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || errors.Is(err, exec.ErrNotFound) {
			err = fmt.Errorf("wg %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	return string(out), err
}
