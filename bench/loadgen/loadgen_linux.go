package loadgen

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/bench/loadgen/rawudp"
	"pipeguard/noise"
	"pipeguard/tunio"
)

// loadgenUsable checks what the loadgen mode needs: root, iproute2 and
// /dev/net/tun (the harness is its own peer: no iperf3 or ping).
func loadgenUsable() error { return nsenv.Usable("ip") }

// Measure is the load generator mode: PipeGuard with each engine, then
// wireguard-go, one at a time as the only tunnel process, in namespace A
// of nsenv's pair; the harness plays its peer in namespace B and
// measures inbound (it seals, the tunnel opens and writes to its TUN) and
// outbound (a sender in A writes into the tunnel, the harness receives).
// It builds the tunnel programs once, removes what crashed runs left
// behind, and removes everything it made before it returns, also when ctx
// ends.
func Measure(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg = cfg.WithDefaults()
	nb, err := nsenv.Open(ctx, cfg.Out, loadgenUsable)
	if err != nil {
		return nil, err
	}
	defer nsenv.CloseKeep(&err, nb.Close)
	bins, env := nb.Bins, nb.Env
	env.ExtraEnv = append(env.ExtraEnv, loadgenScheduling)
	// The inbound load's destination: dropped at A's first route lookup,
	// silently (a blackhole sends no ICMP).
	if err := nsenv.IPCmd("-n", env.A, "route", "add", "blackhole", loadSinkRoute); err != nil {
		return nil, err
	}
	cpu := genCPU()
	rep := &Report{MTU: nsenv.MTU, InnerPacketBytes: loadInnerSize, Seconds: cfg.Duration.Seconds(),
		WarmupSeconds: loadWarmup.Seconds(), WireguardGoVersion: bins.WGVersion, PipeGuardRevision: bins.Revision}
	// One ring for the run, sealed anew for each inbound cell.
	n, capped := ringPackets(cfg.Duration, memAvailable())
	ring, err := newSealedRing(n)
	if err != nil {
		return nil, err
	}
	defer nsenv.CloseKeep(&err, ring.close)
	rep.RingPackets, rep.RingBytes, rep.RingMapSeconds = n, ring.bytes(), ring.mapTook.Seconds()
	if capped {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the pre-sealed ring was capped at %d datagrams (%.1f GiB): %.1f s of the %.1f s each inbound cell sends at %.1f Mpps",
			n, float64(ring.bytes())/(1<<30), float64(n)/loadRingRate, (loadWarmup+cfg.Duration+loadRingSlack).Seconds(), loadRingRate/1e6))
	}
	kinds := core.KindsManaged(cfg.Engines, cfg.Managed, cfg.Unmanaged)
	prog := cfg.Out.Progress(cfg.Repeat * len(kinds) * len(loadDirections))
	defer prog.Finish()
	samples := make([][][]Sample, len(kinds))
	args := make([][]string, len(kinds))
	for i := range samples {
		samples[i] = make([][]Sample, len(loadDirections))
	}
	for r := range cfg.Repeat {
		// Each repeat starts with another tunnel, as in the netns mode.
		for j := range kinds {
			i := (j + r) % len(kinds)
			m := &loadMeasurement{env: env, bins: bins, kind: kinds[i], cfg: &cfg, prog: prog, cpu: cpu, ring: ring}
			s, err := m.run(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("loadgen: %s: %w", kinds[i], err)
			}
			for d := range loadDirections {
				samples[i][d] = append(samples[i][d], s[d])
			}
			args[i] = m.args
			rep.Warnings = append(rep.Warnings, m.warnings...)
			if rep.Generator == "" {
				rep.Generator = m.describe()
			}
		}
	}
	rep.Runs = summarizeLoadgen(kinds, args, samples)
	rep.Warnings = append(rep.Warnings, loadgenWarnings(rep.Runs)...)
	rep.LoadAverageEnd = core.LoadAverage()
	if rss, err := nsenv.ProcPeakRSS(os.Getpid()); err == nil {
		rep.PeakRSSBytes = rss
	}
	return rep, nil
}

// Socket buffers of the harness's ends: the receiver's is large, so that
// the harness never drops what the tunnel sends while it is descheduled
// or sleeping between reads; the senders' hold the window's datagrams
// until the tunnel has read them.
const loadPeerSocketBuffer = 32 << 20

// loadDrainPause: once a read has drained the harness's socket while
// datagrams keep coming, the receiver sleeps this long rather than wait
// for the next one. Waiting, it is woken for every GSO run the tunnel
// sends, thousands of times a second, a thread switch each; asleep, it
// wakes a thousand times a second at most and finds a millisecond's
// datagrams waiting (under 1 MiB at a million a second).
const loadDrainPause = time.Millisecond

// loadMeasurement is one repeat of one tunnel under load: start it,
// handshake, check that each direction delivers, measure both, stop it.
type loadMeasurement struct {
	env      *nsenv.Env
	bins     *nsenv.Bins
	kind     core.Kind
	cfg      *Config
	prog     *core.Progress
	cpu      int         // the generator's CPU, -1 for none
	ring     *sealedRing // the inbound load, sealed before each inbound cell
	args     []string
	warnings []string

	proc  *nsenv.Proc // the tunnel
	files []*procFile // its /proc files the measurement reads
	iface string      // its TUN interface
	peer  *loadPeer
	out   *rawudp.Conn // the outbound sender's socket, in A
	gso   bool         // the peer's socket sends with UDP GSO
	gro   bool         // and receives with UDP GRO
}

func (m *loadMeasurement) run(ctx context.Context) (_ [2]Sample, err error) {
	var s [2]Sample
	tunnelKey, err := noise.GeneratePrivateKey()
	if err != nil {
		return s, err
	}
	peerKey, err := noise.GeneratePrivateKey()
	if err != nil {
		return s, err
	}
	m.iface = m.env.TunnelName("a")
	if m.proc, m.args, err = nsenv.StartTunnel(m.env, m.bins, m.kind,
		nsenv.End{NS: m.env.A, Iface: m.iface, Inner: nsenv.InnerA, PeerOuter: nsenv.OuterB, PeerInner: nsenv.InnerB,
			Key: tunnelKey, Peer: peerKey.Public()}); err != nil {
		return s, err
	}
	defer func() {
		for _, f := range m.files {
			f.close()
		}
		if code := m.proc.Stop(nsenv.StopGrace); code != 0 {
			m.warnings = append(m.warnings, fmt.Sprintf("%s exited with status %d after SIGTERM: %s",
				m.proc.Name, code, nsenv.LastLine(m.proc.Out.String())))
		}
	}()
	if err := nsenv.WaitUAPI(ctx, m.proc, m.iface); err != nil {
		return s, err
	}

	// The peer's socket is made in B, the outbound sender's in A; once
	// made, they may be used from any thread.
	var conn *rawudp.Conn
	if err := nsenv.InNetns(m.env.B, func() error {
		conn, err = rawudp.New(netip.MustParseAddrPort(nsenv.OuterB+":51820"), loadPeerSocketBuffer, loadDrainPause)
		return err
	}); err != nil {
		return s, fmt.Errorf("%w: the harness's socket in %s: %v", core.ErrNetns, m.env.B, err)
	}
	if m.peer, err = newLoadPeer(conn, netip.MustParseAddrPort(nsenv.OuterA+":51820"), peerKey, tunnelKey.Public(),
		netip.MustParseAddr(nsenv.InnerB), loadSink); err != nil {
		conn.Close()
		return s, err
	}
	m.gso, m.gro = conn.Offloads()
	served := make(chan error, 1)
	go func() { served <- m.peer.serve() }()
	defer func() {
		conn.Close()
		if serr := <-served; serr != nil && err == nil {
			err = fmt.Errorf("%w: receiving: %v", core.ErrNetns, serr)
		}
	}()
	if err := nsenv.InNetns(m.env.A, func() error {
		var err error
		m.out, err = rawudp.New(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), loadPeerSocketBuffer, 0)
		return err
	}); err != nil {
		return s, fmt.Errorf("%w: the sender's socket in %s: %v", core.ErrNetns, m.env.A, err)
	}
	defer m.out.Close()

	if err := m.peer.handshake(ctx, 10*time.Second); err != nil {
		return s, m.dead(err)
	}
	// Keepalives every few seconds keep a tunnel that only sends from
	// starting a handshake because it hears nothing back.
	kctx, stopKeepalives := context.WithCancel(ctx)
	defer stopKeepalives()
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-t.C:
				m.peer.keepalive()
			}
		}
	}()
	if err := m.ready(ctx); err != nil {
		return s, m.dead(err)
	}
	for d, dir := range loadDirections {
		what := fmt.Sprintf("%s: %s, %d-byte packets", m.kind, dir, loadInnerSize)
		m.prog.Begin(what)
		if s[d], err = m.measure(ctx, dir); err != nil {
			return s, m.dead(fmt.Errorf("%s: %w", dir, err))
		}
		m.prog.End(what, fmt.Sprintf("%.2f Gbit/s, tunnel CPU %.0f%%, generator CPU %.0f%%", s[d].gbps(),
			100*s[d].TunnelCPUSeconds/s[d].Seconds, 100*s[d].GeneratorCPUSeconds/s[d].Seconds))
	}
	if n := m.peer.answered.Load(); n > 0 {
		m.warnings = append(m.warnings, fmt.Sprintf("%s: the tunnel started %d handshake(s) during the run; the harness answered", m.kind, n))
	}
	return s, m.peer.checkForged()
}

// dead adds to err what the tunnel printed when it has exited.
func (m *loadMeasurement) dead(err error) error {
	if m.proc.Exited() {
		return fmt.Errorf("%w: %v; %s exited: %v\n%s", core.ErrNetns, err, m.proc.Name, m.proc.Err(), m.proc.Out)
	}
	return err
}

// readyBatch is the count of each direction's check before measuring.
const readyBatch = 64

// ready checks that each direction delivers, and is counted, exactly:
// one batch in (the TUN's counters must show every packet, GRO or not),
// one batch out (the harness must receive every one, authenticated).
func (m *loadMeasurement) ready(ctx context.Context) error {
	tun := m.tunCounters()
	c0, err := tun()
	if err != nil {
		return err
	}
	msgs := make([]tunio.Datagram, readyBatch)
	m.peer.sealInbound(msgs)
	if err := m.peer.conn.WriteBatch(msgs); err != nil {
		return err
	}
	var got uint64
	if err := pollUntil(ctx, 5*time.Second, func() (bool, error) {
		c, err := tun()
		got = tunDelivered(c.rxBytes-c0.rxBytes, c.rxPackets-c0.rxPackets)
		return got >= readyBatch, err
	}); err != nil {
		return fmt.Errorf("%w: inbound check: the TUN counted %d of %d packets: %v", core.ErrNetns, got, readyBatch, err)
	}
	if got != readyBatch {
		return fmt.Errorf("%w: inbound check: the TUN counted %d packets, %d sent", core.ErrNetns, got, readyBatch)
	}
	d0 := m.peer.data.Load()
	fill := m.outboundFill()
	fill(msgs)
	if err := m.out.WriteBatch(msgs); err != nil {
		return err
	}
	if err := pollUntil(ctx, 5*time.Second, func() (bool, error) { return m.peer.data.Load()-d0 >= readyBatch, nil }); err != nil {
		return fmt.Errorf("%w: outbound check: the harness received %d of %d packets: %v", core.ErrNetns, m.peer.data.Load()-d0, readyBatch, err)
	}
	if m.peer.sampled.Load() == 0 {
		return fmt.Errorf("%w: outbound check: nothing authenticated", core.ErrNetns)
	}
	return m.peer.checkForged()
}

// pollUntil calls ok every millisecond until it holds, fails, or timeout
// passes.
func pollUntil(ctx context.Context, timeout time.Duration, ok func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := ok()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// outboundFill returns the outbound load's fill: every datagram the same
// payload, to B's tunnel address, which A routes into the tunnel; UDP GSO
// sends a batch in one or two super-packets, the kernel adds the headers.
func (m *loadMeasurement) outboundFill() func([]tunio.Datagram) {
	payload := make([]byte, loadPayloadSize)
	for i := range payload {
		payload[i] = byte(i)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr(nsenv.InnerB), loadSinkPort)
	return func(msgs []tunio.Datagram) {
		for i := range msgs {
			msgs[i] = tunio.Datagram{Buf: payload, N: len(payload), Addr: dst}
		}
	}
}

// procFile opens the tunnel's /proc/<pid>/name for reading, to be closed
// at the end of the measurement.
func (m *loadMeasurement) procFile(name string) *procFile {
	f := newProcFile(fmt.Sprintf("/proc/%d/%s", m.proc.Pid(), name))
	m.files = append(m.files, f)
	return f
}

// tunCounters returns a reader of the tunnel's TUN interface's counters,
// which /proc/<pid>/net/dev shows for the tunnel's namespace. Each reader
// is for one goroutine.
func (m *loadMeasurement) tunCounters() func() (netDevCounters, error) {
	f := m.procFile("net/dev")
	return func() (netDevCounters, error) {
		b, err := f.read()
		if err != nil {
			return netDevCounters{}, err
		}
		return parseNetDev(b, m.iface)
	}
}

// udpRcvbufErrors returns a reader of the UDP receive buffer drops in the
// tunnel's namespace (its socket is the only one there that receives
// load).
func (m *loadMeasurement) udpRcvbufErrors() func() (uint64, error) {
	f := m.procFile("net/snmp")
	return func() (uint64, error) {
		b, err := f.read()
		if err != nil {
			return 0, err
		}
		return parseSnmpUDP(b, "RcvbufErrors")
	}
}

// loadSnap is what a measurement reads at each end of its interval.
type loadSnap struct {
	at           time.Time
	tunnel, self time.Duration // CPU time
	delivered    uint64
	live         uint64 // inbound datagrams sealed on the fly
	flood        floodStats
}

// measure runs one direction's generator, lets it warm up, and measures
// over cfg.Duration.
func (m *loadMeasurement) measure(ctx context.Context, dir core.Direction) (Sample, error) {
	var f *flood
	var delivered func() (uint64, error) // for the snapshots, on this goroutine
	var live func() uint64
	switch dir {
	case core.Inbound:
		// Sealed on both CPUs before the clock starts (and before the
		// harness is pinned to one).
		defer m.peer.releaseRing()
		if err := m.peer.presealInbound(m.ring); err != nil {
			return Sample{}, err
		}
		live = m.ring.live.Load
		tunF, dropsF := m.tunCounters(), cachedFor(dropLookEvery, time.Now, m.udpRcvbufErrors()) // the flood's
		tunS := m.tunCounters()                                                                  // the snapshots'
		c0, err := tunF()
		if err != nil {
			return Sample{}, err
		}
		r0, err := dropsF() // the first call reads
		if err != nil {
			return Sample{}, err
		}
		f = newFlood(m.peer.conn, m.peer.conn.BatchSize(), m.ring.fill, func() (uint64, uint64, error) {
			c, err := tunF()
			if err != nil {
				return 0, 0, err
			}
			r, err := dropsF()
			return tunDelivered(c.rxBytes-c0.rxBytes, c.rxPackets-c0.rxPackets), r - r0, err
		}, time.Sleep)
		delivered = func() (uint64, error) {
			c, err := tunS()
			return tunDelivered(c.rxBytes-c0.rxBytes, c.rxPackets-c0.rxPackets), err
		}
	case core.Outbound:
		tunF := m.tunCounters()
		c0, err := tunF()
		if err != nil {
			return Sample{}, err
		}
		txDropped := cachedFor(dropLookEvery, time.Now, func() (uint64, error) {
			c, err := tunF()
			return c.txDropped, err
		})
		d0 := m.peer.data.Load()
		f = newFlood(m.out, m.out.BatchSize(), m.outboundFill(), func() (uint64, uint64, error) {
			d, err := txDropped()
			return m.peer.data.Load() - d0, d - c0.txDropped, err
		}, time.Sleep)
		delivered = func() (uint64, error) { return m.peer.data.Load() - d0, nil }
		live = func() uint64 { return 0 }
		m.peer.keepalive() // the tunnel has heard from us just now
	}
	unpin, err := pinProcess(m.cpu)
	if err != nil {
		return Sample{}, err
	}
	defer unpin()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	flooded := make(chan error, 1)
	go func() { flooded <- f.run(fctx) }()
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-flooded:
			return fmt.Errorf("the generator stopped: %v", err)
		case <-ctx.Done():
			<-flooded
			return ctx.Err()
		}
	}
	snap := func() (loadSnap, error) {
		s := loadSnap{at: time.Now(), self: core.ProcessCPU(), flood: f.snapshot(), live: live()}
		var err error
		if s.tunnel, err = nsenv.ProcCPU(m.proc.Pid()); err != nil {
			return s, err
		}
		s.delivered, err = delivered()
		return s, err
	}
	if err := wait(loadWarmup); err != nil {
		return Sample{}, err
	}
	s0, err := snap()
	if err != nil {
		return Sample{}, err
	}
	if err := wait(m.cfg.Duration); err != nil {
		return Sample{}, err
	}
	s1, err := snap()
	if err != nil {
		return Sample{}, err
	}
	stop()
	if err := <-flooded; err != nil {
		return Sample{}, err
	}
	if err := m.peer.checkForged(); err != nil {
		return Sample{}, err
	}
	sample := Sample{
		Packets:             s1.delivered - s0.delivered,
		Offered:             s1.flood.Sent - s0.flood.Sent,
		Seconds:             s1.at.Sub(s0.at).Seconds(),
		TunnelCPUSeconds:    (s1.tunnel - s0.tunnel).Seconds(),
		GeneratorCPUSeconds: (s1.self - s0.self).Seconds(),
		WaitSeconds:         (s1.flood.Wait - s0.flood.Wait).Seconds(),
		Drops:               s1.flood.Drops - s0.flood.Drops,
		Stalls:              s1.flood.Stalls - s0.flood.Stalls,
		SealedLive:          s1.live - s0.live,
	}
	if dir == core.Inbound {
		sample.SealSeconds, sample.SealedAhead = m.ring.sealTook.Seconds(), uint64(len(m.ring.pkts))
		if w := m.ring.check(time.Now()); w != "" {
			m.warnings = append(m.warnings, fmt.Sprintf("%s inbound: %s", m.kind, w))
		}
	}
	return sample, nil
}

// describe says how the generator ran, for the report.
func (m *loadMeasurement) describe() string {
	pin := "not pinned (one CPU)"
	if m.cpu >= 0 {
		pin = fmt.Sprintf("the harness's threads all pinned to CPU %d of %d and GOMAXPROCS 1 while it measures (the tunnel's may use every CPU)", m.cpu, runtime.NumCPU())
	}
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("one sending and one receiving goroutine, %s; sendmmsg of up to %d datagrams, UDP GSO %s; recvmmsg, UDP GRO %s, "+
		"a %v pause once the socket is drained; at most %d packets in flight (a window that shrinks on loss), a %v pause when it is full; "+
		"inbound sealed ahead, before each inbound cell, on %d CPUs, and sealed on the fly only if the ring runs out",
		pin, m.peer.conn.BatchSize(), onOff(m.gso), onOff(m.gro), loadDrainPause, windowMax, floodPause, runtime.GOMAXPROCS(0))
}
