package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"pipeguard/cmd/headless-client/addrwatch"
	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/dns"
	"pipeguard/cmd/headless-client/ifsetup"
	"pipeguard/cmd/headless-client/lifecycle"
	"pipeguard/cmd/headless-client/linkwatch"
	"pipeguard/cmd/headless-client/metrics"
	"pipeguard/cmd/headless-client/sdnotify"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/stages"
	"pipeguard/tunio"
)

// standaloneCmd brings a tunnel up from a config file and keeps it up
// until SIGTERM or SIGINT; SIGHUP reloads the config.
type standaloneCmd struct {
	Config          string `help:"WireGuard config file (wg-quick format)." default:"/etc/pipeguard/pg0.conf" env:"PIPEGUARD_CONFIG"`
	Interface       string `help:"Interface name; default: the config file's name without .conf."`
	LogDir          string `help:"Also write JSON log lines to files in this directory, rotated by size." env:"LOG_DIR"`
	StateDir        string `help:"${state_dir_help}" env:"PIPEGUARD_STATE_DIR"`
	DNSControl      string `help:"How to apply the config's DNS: auto is systemd-resolved when it runs, else disabled; disabled leaves the system alone; etc-resolv-conf writes /etc/resolv.conf; resolvconf calls resolvconf(8) as wg-quick does; systemd-resolved sets the link's DNS over D-Bus. Every mode is undone at exit, and after a crash at the next start." default:"auto" enum:"auto,disabled,etc-resolv-conf,resolvconf,systemd-resolved"`
	Check           bool   `help:"Check everything a start would refuse (file, keys, routes, capability, interface name, ports, DNS mode), print one line and exit: 0 if it would start, 1 with the reason. Creates nothing."`
	dataplaneFlags  `embed:""`
	FailOpen        bool `help:"Full tunnel: when the tunnel's interface or process is gone (a crash, ip link del, link down), let its traffic fall through to the main table, unencrypted, as wg-quick does. Default: fail closed, the traffic is dropped until the tunnel is back, is stopped (SIGTERM), or 'cleanup IFACE' is run."`
	BlockUntunneled bool `help:"Full tunnel of one family (0.0.0.0/0 without ::/0, or the other way): drop the other family's traffic too, except to the local network, instead of letting it leave outside the tunnel."`
}

func (c *standaloneCmd) Run(env *runEnv) error {
	// Signals are caught from the start of main; a SIGHUP that arrived
	// since is served once the tunnel runs, a stop ends ctx.
	ctx, stop := env.signals.Context(context.Background())
	defer stop()
	c.StateDir = stateDirFor(c.StateDir, os.Geteuid())
	// Every refusal comes before anything is created, so a refused start
	// (and --check) leaves nothing behind.
	p, err := c.preflight(ctx)
	if ctx.Err() != nil {
		// Stopped while it resolved endpoints: not a failure.
		env.log.Info("stopped during start-up", "signal", context.Cause(ctx))
		return nil
	}
	if err != nil {
		return err
	}
	if c.Check {
		_, err := fmt.Fprintln(env.stdout, p.summary(c.Config))
		return err
	}
	iface, cfg, peers := p.iface, p.cfg, p.peers
	log, closeLog, err := withLogDir(env.stderr, env.logLevel, c.LogDir, iface)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	if err := p.id.save(); err != nil {
		return err
	}
	log = log.With("interface", iface)
	log.Info("starting", "device_id", p.id.id, "device_id_from", p.id.source, "config", c.Config, "peers", len(cfg.Peers))
	warnOverlaps(log, peers)
	p.warnBypass(log)
	c.schedule(log)
	p.startDNS(log)
	t, err := bringUp(iface, cfg, peers, c, &dns.Request{System: p.dnsSys, Mode: p.dnsMode, Settings: p.dns}, log)
	if err != nil {
		return err
	}
	return t.run(ctx, env.signals.Hup(), c.Config, log)
}

// resolvePeers turns the config's peers into the tunnel's, resolving host
// name endpoints with r.
func resolvePeers(ctx context.Context, cfg *config.Config, r *net.Resolver) ([]stages.PeerConfig, error) {
	out := make([]stages.PeerConfig, 0, len(cfg.Peers))
	for i := range cfg.Peers {
		pe := &cfg.Peers[i]
		ep, err := pe.ResolveEndpoint(ctx, r.LookupNetIP)
		if err != nil {
			return nil, err
		}
		out = append(out, stages.PeerConfig{
			PublicKey:           pe.PublicKey,
			PresharedKey:        pe.PresharedKey,
			Endpoint:            ep,
			AllowedIPs:          pe.AllowedIPs,
			PersistentKeepalive: pe.PersistentKeepalive,
		})
	}
	return out, nil
}

// routesOf is every peer's AllowedIPs, the routes the interface needs.
func routesOf(peers []stages.PeerConfig) (routes []netip.Prefix, endpoints []netip.AddrPort) {
	for _, p := range peers {
		routes = append(routes, p.AllowedIPs...)
		endpoints = append(endpoints, p.Endpoint)
	}
	return routes, endpoints
}

// running is an up tunnel with everything around it.
type running struct {
	iface  string
	tunnel *stages.Tunnel
	ifc    *ifsetup.Interface
	watch  *linkwatch.Watcher // holds the MTU, restores routes after a link bounce
	addrs  *addrwatch.Watcher // keeps the addresses peers are answered from true
	uapi   *uapi.Server
	http   []*metrics.Server // metrics and pprof endpoints, if asked for
	cfg    *config.Config
	peers  []stages.PeerConfig // as last applied from the file
	mu     sync.Mutex          // serialises config changes: reloads and UAPI sets
}

// bringUp creates the socket, the routing that needs no interface (a
// full tunnel's unreachable routes and policy rules: from here on its
// traffic goes nowhere, not out in cleartext), the TUN device, the
// tunnel, the interface's configuration and the UAPI socket, in that
// order; on failure it undoes what it did, and leaves the routing as it
// found it (ifsetup's Abort).
func bringUp(iface string, cfg *config.Config, peers []stages.PeerConfig, c *standaloneCmd, dnsReq *dns.Request, log *slog.Logger) (*running, error) {
	// Rebindable, so that wg set can move it to another port.
	udp, err := tunio.ListenRebindable(netip.AddrPortFrom(netip.IPv6Unspecified(), cfg.Interface.ListenPort), c.queues().udpOptions())
	if err != nil {
		return nil, fmt.Errorf("headless-client: UDP port %d: %w", cfg.Interface.ListenPort, err)
	}
	routes, endpoints := routesOf(peers)
	ifcfg := ifsetup.Config{
		Name:            iface,
		MTU:             cfg.Interface.MTU,
		Addresses:       cfg.Interface.Addresses,
		Routes:          routes,
		Endpoints:       endpoints,
		Table:           cfg.Interface.Table,
		FwMark:          cfg.Interface.FwMark,
		StateFile:       c.rulesFile(iface),
		DNS:             dnsReq,
		FailOpen:        c.FailOpen,
		BlockUntunneled: c.BlockUntunneled,
	}
	ifc, err := ifsetup.Prepare(ifcfg, log)
	if err != nil {
		udp.Close()
		return nil, err
	}
	dev, err := tunio.CreateTUN(iface, cfg.Interface.MTU)
	if err != nil {
		ifc.Abort()
		udp.Close()
		return nil, fmt.Errorf("headless-client: creating TUN device %s: %w", iface, err)
	}
	undo := func() {
		ifc.Abort()
		dev.Close()
		udp.Close()
	}
	sc := stages.Config{
		PrivateKey: cfg.Interface.PrivateKey,
		Peers:      peers,
		Engine:     stages.Engine(c.Engine),
		Workers:    c.Workers,
	}
	c.queues().apply(&sc)
	tun, err := stages.New(sc, dev, udp, nil, log)
	if err != nil {
		undo()
		return nil, err
	}
	// The mark before anything is sent (the tunnel sends once it runs):
	// without it, its own packets would be routed into itself.
	if err := setFwMark(tun, ifc.FwMark()); err != nil {
		undo()
		return nil, err
	}
	if err := ifc.Configure(ifcfg); err != nil {
		undo()
		return nil, err
	}
	watch, err := linkwatch.New(linkwatch.Config{Name: iface, MaxMTU: config.MaxMTU, OnUp: ifc.Restore}, log)
	if err != nil {
		undo()
		return nil, err
	}
	addrs, err := addrwatch.New(tun, log)
	if err != nil {
		watch.Close()
		undo()
		return nil, err
	}
	r := &running{iface: iface, tunnel: tun, ifc: ifc, watch: watch, addrs: addrs, cfg: cfg, peers: peers}
	if r.http, err = metrics.ListenEndpoints(tun, c.MetricsAddr, c.PprofAddr, log); err != nil {
		addrs.Close()
		watch.Close()
		undo()
		return nil, err
	}
	srv, err := uapi.Open(iface, markGuarded{tun, ifc}, &r.mu, log)
	if err != nil {
		for _, s := range r.http {
			s.Close()
		}
		addrs.Close()
		watch.Close()
		undo()
		return nil, fmt.Errorf("headless-client: UAPI socket for %s: %w", iface, err)
	}
	r.uapi = srv
	return r, nil
}

// rulesFile is where the interface's policy rules and unreachable routes
// are recorded.
func (c *standaloneCmd) rulesFile(iface string) string { return rulesFile(c.StateDir, iface) }

// markGuarded is the tunnel as its UAPI socket serves it: a new fwmark
// must suit the interface's policy rules (uapi.MarkChecker).
type markGuarded struct {
	*stages.Tunnel
	ifc *ifsetup.Interface
}

// CheckFwMark asks the interface configuration.
func (m markGuarded) CheckFwMark(mark uint32) error { return m.ifc.CheckFwMark(mark) }

var _ uapi.MarkChecker = markGuarded{}

// run serves until ctx ends (SIGTERM, SIGINT) or the tunnel fails, and
// reloads on SIGHUP. It stops everything in order: the UAPI socket and
// the tunnel (whose device takes the interface with it), then the
// interface configuration that outlives the device. Only an explicit
// stop (ctx) restores normal routing and DNS; when the tunnel stops by
// itself (its interface deleted, a part failed), a full tunnel stays
// failed closed, as after a crash, for the restart to take over.
func (r *running) run(ctx context.Context, hup <-chan os.Signal, cfgPath string, log *slog.Logger) error {
	log.Info("tunnel running", "listen_port", r.tunnel.LocalAddr().Port(), "public_key", r.tunnel.PublicKey(), "uapi", r.uapi.Path())
	sd, watch := notifySystemd(r.tunnel, log)
	// restore: the stop was asked for, or nothing fails closed.
	restore := func() bool { return ctx.Err() != nil || !r.ifc.FailsClosed() }
	parts := lifecycle.Parts{
		Iface:  r.iface,
		Tunnel: r.tunnel,
		UAPI:   r.uapi,
		Watch:  watch,
		Link:   r.watch,
		Addrs:  r.addrs,
		Reload: func(ctx context.Context) {
			sd.Reloading()
			r.reload(ctx, cfgPath, log)
			sd.Ready(sdnotify.TunnelStatus(r.tunnel.AllPeers(), time.Now(), nil))
		},
		Stopping: func() {
			sd.Stopping()
			// DNS first, while the link is still there (systemd-resolved's
			// RevertLink needs it) and before names could go to the
			// servers of a tunnel that is going down. Not when the tunnel
			// fails closed: the system's servers outside the tunnel could
			// be on the local network, which the routing still reaches.
			if !restore() {
				return
			}
			if err := r.ifc.RevertDNS(); err != nil {
				log.Warn("restoring DNS", "err", err)
			}
		},
	}
	for _, s := range r.http {
		parts.HTTP = append(parts.HTTP, s)
	}
	failed := lifecycle.Run(ctx, parts, hup, log)
	// Even after a timeout: restore DNS and remove what is left, or keep
	// what fails closed.
	if restore() {
		if err := r.ifc.Down(); err != nil {
			log.Warn("removing interface configuration", "err", err)
		}
	} else if _, err := r.ifc.Fail(); err != nil {
		log.Warn("removing interface configuration", "err", err)
	}
	if failed != nil {
		return failed
	}
	log.Info("stopped")
	return nil
}

// setFwMark puts the mark a full tunnel's policy routing needs (or the
// config's FwMark) on the tunnel's sockets, before the tunnel sends
// anything: without it, its own packets would be routed into itself.
func setFwMark(tun *stages.Tunnel, mark uint32) error {
	if mark == 0 {
		return nil
	}
	if err := tun.SetFwMark(mark); err != nil {
		return fmt.Errorf("headless-client: fwmark %#x on the tunnel's socket: %w", mark, err)
	}
	return nil
}

// notifySystemd tells systemd, when it runs the client as a Type=notify
// service, that the tunnel is ready; watch keeps it informed (STATUS=,
// WATCHDOG=1 while healthy) until its ctx ends. The notifier is nil, and
// ignores calls, outside such a service.
func notifySystemd(t *stages.Tunnel, log *slog.Logger) (sd *sdnotify.Notifier, watch lifecycle.Service) {
	sd, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("cannot tell systemd how the tunnel is doing", "err", err)
	}
	if err := sd.Ready(sdnotify.TunnelStatus(t.AllPeers(), time.Now(), nil)); err != nil {
		log.Warn("cannot tell systemd the tunnel is ready", "err", err)
	}
	return sd, lifecycle.ServiceFunc(func(ctx context.Context) error { sd.Watch(ctx, t, log); return nil })
}
