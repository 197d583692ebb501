package peers

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/noise"
	"pipeguard/tunio"
)

// Addresses of the mode beside nsenv's: where the real peer listens in
// namespace B, the tunnel's port, the sink its stream goes to (a
// blackhole route in A drops it at the first lookup, silently), and the
// burst's source addresses, on B's veth end.
const (
	tunnelPort   = 51820
	realPeerPort = 51900
	streamSink   = "10.204.0.1"
	sinkRoute    = "10.204.0.0/24"
	metricsAddr  = "127.0.0.1:9586" // PipeGuard's, on A's loopback
	firstSource  = 64               // burst sources are OuterB's /24 from .64 on
)

// usable checks what the mode needs: root, /dev/net/tun, iproute2, wg
// and ping.
func usable() error {
	if err := nsenv.Usable("ip", "ping"); err != nil {
		return err
	}
	if _, err := exec.LookPath("wg"); err != nil {
		return fmt.Errorf("%w: no wg (run as root; scripts/setup.sh installs wireguard-tools)", core.ErrNetnsUnavailable)
	}
	return nil
}

// Measure runs the mode as cfg says (see the package comment). It needs
// root; it builds the tunnel programs, and removes everything it made,
// also when ctx ends (cmd/bench ends it on Ctrl-C).
func Measure(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg = cfg.WithDefaults()
	lab, err := nsenv.Open(ctx, cfg.Out, usable)
	if err != nil {
		return nil, err
	}
	defer nsenv.CloseKeep(&err, lab.Close)
	env := lab.Env
	if err := nsenv.IPCmd("-n", env.A, "route", "add", "blackhole", sinkRoute); err != nil {
		return nil, err
	}
	for i := range burstSources {
		if err := nsenv.IPCmd("-n", env.B, "addr", "add", sourceAddr(i).String()+"/24", "dev", env.VethB); err != nil {
			return nil, err
		}
	}
	rep := &Report{WireguardGo: lab.Bins.WGVersion, Revision: lab.Bins.Revision, IdleSeconds: cfg.Idle.Seconds(),
		StreamSeconds: cfg.Stream.Seconds(), Burst: cfg.Burst}
	impls := []string{ImplPipeGuard, ImplWireguardGo}
	prog := cfg.Out.Progress(cfg.Repeat * len(impls) * len(cfg.Peers))
	defer prog.Finish()
	for range cfg.Repeat {
		var rows []Row
		for _, impl := range impls {
			for _, n := range cfg.Peers {
				what := fmt.Sprintf("%s with %d peer%s", impl, n, core.Plural(n))
				prog.Begin(what)
				if impl == ImplWireguardGo && n > WireguardGoMaxPeers {
					rows = append(rows, Row{Impl: impl, Peers: n, Refused: true})
					prog.End(what, "refused (MaxPeers)")
					continue
				}
				m := &measurement{env: env, bins: lab.Bins, impl: impl, n: n, cfg: cfg}
				row, err := m.run(ctx)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", what, err)
				}
				rows = append(rows, row)
				prog.End(what, fmt.Sprintf("setconf %.2f s, RSS %.0f MiB, burst all in %.2f s", row.SetconfSeconds,
					float64(row.RSSBytes)/(1<<20), row.Burst.AllSeconds))
			}
		}
		relative(rows)
		rep.Runs = append(rep.Runs, rows)
	}
	rep.Rows = medianRows(rep.Runs)
	relative(rep.Rows)
	if len(rep.Runs) == 1 {
		rep.Runs = nil
	}
	return rep, nil
}

// sourceAddr is the burst's i-th source address, in B.
func sourceAddr(i int) netip.Addr {
	o := netip.MustParseAddr(nsenv.OuterB).As4()
	o[3] = byte(firstSource + i)
	return netip.AddrFrom4(o)
}

// measurement is one implementation at one number of peers.
type measurement struct {
	env  *nsenv.Env
	bins *nsenv.Bins
	impl string
	n    int
	cfg  Config

	iface string
	proc  *nsenv.Proc
	key   noise.PrivateKey // the tunnel's
	keys  []noise.PublicKey
}

// run starts the tunnel empty in namespace A, takes the row's figures in
// the order the package comment gives, and stops it.
func (m *measurement) run(ctx context.Context) (Row, error) {
	row := Row{Impl: m.impl, Peers: m.n}
	m.iface = m.env.TunnelName("a")
	var err error
	if m.key, err = noise.GeneratePrivateKey(); err != nil {
		return row, err
	}
	if m.proc, err = m.start(); err != nil {
		return row, err
	}
	defer m.proc.Stop(5 * time.Second)
	if err := nsenv.WaitUAPI(ctx, m.proc, m.iface); err != nil {
		return row, err
	}
	realKey, err := noise.GeneratePrivateKey()
	if err != nil {
		return row, err
	}
	m.keys = randomKeys(m.n)
	conf := peersConf(m.key, tunnelPort, realKey.Public(), netip.MustParseAddr(nsenv.InnerB),
		netip.AddrPortFrom(netip.MustParseAddr(nsenv.OuterB), realPeerPort), m.keys)
	if row.SetconfSeconds, err = m.wg(ctx, "setconf", conf); err != nil {
		return row, err
	}
	t0 := time.Now()
	dump, err := nsenv.RunIn(ctx, false, m.env.A, "wg", "show", m.iface, "dump")
	if err != nil {
		return row, fmt.Errorf("%w: wg show dump: %v", core.ErrNetns, err)
	}
	row.DumpSeconds = time.Since(t0).Seconds()
	if got := bytes.Count(dump, []byte("\n")) - 1; got != m.n+1 {
		return row, fmt.Errorf("%w: wg show dump lists %d peers, want %d", core.ErrNetns, got, m.n+1)
	}
	if err := m.process(ctx, &row); err != nil {
		return row, err
	}
	if row.IdleCPUPercent, err = idleCPU(ctx, m.proc.Pid(), m.cfg.Idle); err != nil {
		return row, err
	}
	if err := m.traffic(ctx, realKey, &row); err != nil {
		return row, err
	}
	if err := m.addRemove(&row); err != nil {
		return row, err
	}
	if row.Burst, err = m.burst(ctx); err != nil {
		return row, err
	}
	if _, err := m.wg(ctx, "addconf", keepaliveConf(m.keys)); err != nil {
		return row, err
	}
	if row.KeepaliveCPUPercent, err = idleCPU(ctx, m.proc.Pid(), m.cfg.Idle); err != nil {
		return row, err
	}
	return row, nil
}

// start starts the implementation's empty tunnel on the interface in
// namespace A; PipeGuard serves its metrics on A's loopback.
func (m *measurement) start() (*nsenv.Proc, error) {
	if m.impl == ImplPipeGuard {
		return m.env.Start(m.env.A, m.impl, nil, m.bins.Client, "--log-level", "warn", "tunnel", "--foreground",
			"--state-dir", m.env.Dir, "--metrics-addr", metricsAddr, m.iface)
	}
	base := filepath.Join(m.env.Dir, m.iface+"-base.conf")
	if err := os.WriteFile(base, []byte("[Interface]\nPrivateKey = "+m.key.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	return m.env.Start(m.env.A, m.impl, nil, m.bins.WGPeer, "--config", base, "--interface", m.iface, "--uapi", "--log-level", "error")
}

// wg writes conf to a file and runs `wg cmd` with it, and returns its
// wall time in seconds.
func (m *measurement) wg(ctx context.Context, cmd string, conf []byte) (float64, error) {
	path := filepath.Join(m.env.Dir, m.iface+".conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if _, err := nsenv.RunIn(ctx, false, m.env.A, "wg", cmd, m.iface, path); err != nil {
		return 0, fmt.Errorf("%w: wg %s: %v", core.ErrNetns, cmd, err)
	}
	return time.Since(t0).Seconds(), nil
}

// process reads the tunnel process's RSS, threads and (PipeGuard's)
// goroutines.
func (m *measurement) process(ctx context.Context, row *Row) error {
	var err error
	if row.RSSBytes, err = nsenv.ProcRSS(m.proc.Pid()); err != nil {
		return err
	}
	if row.Threads, err = threads(m.proc.Pid()); err != nil {
		return err
	}
	if m.impl != ImplPipeGuard {
		return nil
	}
	// The exposition has a few series per peer (about 400 bytes): 40 MB
	// at 100,000 peers, 400 MB at a million, which take seconds to write
	// and read.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second+time.Duration(m.n/10000)*time.Second)
	defer cancel()
	text, err := nsenv.HTTPGetIn(sctx, m.env.A, "http://"+metricsAddr+"/metrics")
	if err != nil {
		return fmt.Errorf("%w: metrics: %v", core.ErrNetns, err)
	}
	g, err := metricValue(text, "go_goroutines")
	if err != nil {
		return err
	}
	row.Goroutines = int(g)
	return nil
}

// traffic brings the tunnel's interface up with its address, and has
// the real peer (in namespace B) complete a handshake; then it pings the
// real peer from A through the tunnel, idle, and sends the real peer's
// stream for the tunnel to deliver.
func (m *measurement) traffic(ctx context.Context, key noise.PrivateKey, row *Row) error {
	for _, args := range [][]string{
		{"-n", m.env.A, "link", "set", m.iface, "mtu", strconv.Itoa(nsenv.MTU), "up"},
		{"-n", m.env.A, "addr", "add", nsenv.InnerA + "/24", "dev", m.iface},
	} {
		if err := nsenv.IPCmd(args...); err != nil {
			return err
		}
	}
	var conn tunio.UDPConn
	if err := nsenv.InNetns(m.env.B, func() (err error) {
		conn, err = tunio.ListenUDP(netip.AddrPortFrom(netip.MustParseAddr(nsenv.OuterB), realPeerPort))
		return err
	}); err != nil {
		return err
	}
	tunnel := netip.AddrPortFrom(netip.MustParseAddr(nsenv.OuterA), tunnelPort)
	p, err := newRealPeer(conn, tunnel, key, m.key.Public(), netip.MustParseAddr(nsenv.InnerB), netip.MustParseAddr(streamSink))
	if err != nil {
		conn.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- p.serve() }()
	defer func() {
		conn.Close()
		<-served
	}()
	if err := p.handshake(ctx, 10*time.Second); err != nil {
		return err
	}
	out, err := nsenv.RunIn(ctx, false, m.env.A, "ping", "-c", strconv.Itoa(pings), "-i", pingEvery, "-W", "1", nsenv.InnerB)
	if err != nil {
		return fmt.Errorf("%w: ping through the tunnel: %v", core.ErrNetns, err)
	}
	pr, err := nsenv.ParsePing(out)
	if err != nil {
		return err
	}
	if pr.Received == 0 {
		return fmt.Errorf("%w: no ping reply through the tunnel", core.ErrNetns)
	}
	row.RTTMillis = pr.RTT().P50Ms
	// The stream in short segments, its rate their median: on a shared
	// machine, a moment when another task takes the cores falls on one
	// segment, not on the figure.
	segs := max(1, int(m.cfg.Stream/streamSegment))
	var rates []float64
	first, err := m.rxPackets(ctx)
	if err != nil {
		return err
	}
	rx0 := first
	for range segs {
		t0 := time.Now()
		n, err := p.stream(ctx, m.cfg.Stream/time.Duration(segs))
		row.StreamSent += n
		if err != nil {
			return err
		}
		rx1, err := m.rxPackets(ctx)
		if err != nil {
			return err
		}
		rates = append(rates, float64(rx1-rx0)*streamInner*8/time.Since(t0).Seconds()/1e9)
		rx0 = rx1
	}
	row.StreamGbps = core.Median(rates)
	// What the tunnel still held arrives within moments.
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	last, err := m.rxPackets(ctx)
	if err != nil {
		return err
	}
	if row.StreamDelivered = last - first; row.StreamDelivered == 0 {
		return fmt.Errorf("%w: the tunnel delivered none of the real peer's %d packets", core.ErrNetns, row.StreamSent)
	}
	return nil
}

// rxPackets is the packets the tunnel wrote to its TUN device, as its
// interface counts them in A.
func (m *measurement) rxPackets(ctx context.Context) (uint64, error) {
	out, err := nsenv.RunIn(ctx, false, m.env.A, "cat", "/sys/class/net/"+m.iface+"/statistics/rx_packets")
	if err != nil {
		return 0, fmt.Errorf("%w: interface counters: %v", core.ErrNetns, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: interface counters: %q", core.ErrNetns, out)
	}
	return n, nil
}

// addRemove times one peer added and one removed, each one UAPI request
// from the harness (the tunnel's time, without wg's process start).
func (m *measurement) addRemove(row *Row) error {
	sock := nsenv.SocketPath(m.iface)
	var extra noise.PublicKey
	copy(extra[:], randomKeys(1)[0][:])
	var err error
	add := "set=1\npublic_key=" + hexKey(extra) + "\nendpoint=198.18.255.255:9\nallowed_ip=10.255.255.1/32\nallowed_ip=fd01::ffff:ffff/128\n\n"
	if row.AddMillis, err = uapiSet(sock, add); err != nil {
		return err
	}
	row.RemoveMillis, err = uapiSet(sock, "set=1\npublic_key="+hexKey(extra)+"\nremove=true\n\n")
	return err
}

// burst adds the burst's peers (one UAPI request), plays the burst from
// the source addresses in B, and removes them again.
func (m *measurement) burst(ctx context.Context) (BurstResult, error) {
	var conns []tunio.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	if err := nsenv.InNetns(m.env.B, func() error {
		for i := range burstSources {
			c, err := tunio.ListenUDP(netip.AddrPortFrom(sourceAddr(i), 0))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		closeAll()
		return BurstResult{}, err
	}
	tunnel := netip.AddrPortFrom(netip.MustParseAddr(nsenv.OuterA), tunnelPort)
	b, err := newBurst(m.cfg.Burst, tunnel, m.key.Public(), conns)
	if err != nil {
		closeAll()
		return BurstResult{}, err
	}
	sock := nsenv.SocketPath(m.iface)
	keys := b.keys()
	if _, err := uapiSet(sock, peerList(keys, false)); err != nil {
		closeAll()
		return BurstResult{}, err
	}
	res, err := b.run(ctx) // closes the sockets
	if err != nil {
		return res, err
	}
	_, err = uapiSet(sock, peerList(keys, true))
	return res, err
}
