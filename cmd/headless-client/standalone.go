package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/ifsetup"
	"pipeguard/cmd/headless-client/metrics"
	"pipeguard/cmd/headless-client/sdnotify"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/stages"
	"pipeguard/tunio"
)

// standaloneCmd brings a tunnel up from a config file and keeps it up
// until SIGTERM or SIGINT; SIGHUP reloads the config.
type standaloneCmd struct {
	Config        string `help:"WireGuard config file (wg-quick format)." default:"/etc/pipeguard/pg0.conf" env:"PIPEGUARD_CONFIG"`
	Interface     string `help:"Interface name; default: the config file's name without .conf."`
	LogDir        string `help:"Also write JSON log lines to files in this directory, rotated by size." env:"LOG_DIR"`
	StateDir      string `help:"State directory; the device id is kept in <dir>/config/pipeguard-id." default:"/var/lib/pipeguard" env:"PIPEGUARD_STATE_DIR"`
	DNSControl    string `help:"How to apply the config's DNS: disabled leaves the system alone; etc-resolv-conf writes /etc/resolv.conf and restores it on exit." default:"disabled" enum:"disabled,etc-resolv-conf"`
	Engine        string `help:"Dataplane engine: pipeline or sequential." default:"pipeline" enum:"pipeline,sequential"`
	Workers       int    `help:"Encrypt and decrypt workers each (pipeline engine); 0: one per CPU." default:"0"`
	QueueCapacity int    `help:"Capacity of each queue between pipeline stages, in packets (at least 64: a segmentation-offloaded TUN read needs up to a batch of slots)." default:"1000"`
	MetricsAddr   string `help:"Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9586); empty: off." env:"PIPEGUARD_METRICS_ADDR"`
	PprofAddr     string `help:"Serve Go's pprof endpoints at http://ADDR/debug/pprof/ (e.g. 127.0.0.1:6060); empty: off. Keep it on loopback." env:"PIPEGUARD_PPROF_ADDR"`
}

// minQueueCapacity keeps room for one whole TUN batch in a queue: with
// segmentation offload one read splits a 64 KB packet into as many as 53
// packets of the 1280-byte MTU, and fewer slots would lose it.
const minQueueCapacity = 64

// errQueueCapacity refuses a queue too small for an offloaded TUN read.
var errQueueCapacity = fmt.Errorf("headless-client: --queue-capacity must be at least %d", minQueueCapacity)

// stopTimeout is how long an orderly stop may take once the tunnel was
// told to stop: within the 2 s an admin (and systemd's patience) expects.
const stopTimeout = 2 * time.Second

// errStopTimeout means a part of the tunnel did not stop in time.
var errStopTimeout = errors.New("headless-client: tunnel did not stop within 2 s")

func (c *standaloneCmd) Run(env *runEnv) error {
	iface := c.Interface
	var err error
	if iface == "" {
		iface, err = config.InterfaceName(c.Config)
	} else {
		err = config.CheckInterfaceName(iface)
	}
	if err != nil {
		return err
	}
	log, closeLog, err := withLogDir(env.stderr, env.logLevel, c.LogDir, iface)
	if err != nil {
		return err
	}
	defer closeLog.Close()

	// Every refusal comes before anything is created, so a refused start
	// leaves nothing behind.
	cfg, err := config.Load(c.Config)
	if err != nil {
		return err
	}
	if c.QueueCapacity < minQueueCapacity {
		return errQueueCapacity
	}
	if err := checkNetAdmin(); err != nil {
		return err
	}
	id, idFrom, err := deviceID(os.Getenv("PIPEGUARD_ID"), deviceIDFile(c.StateDir))
	if err != nil {
		return err
	}
	log = log.With("interface", iface)
	log.Info("starting", "device_id", id, "device_id_from", idFrom, "config", c.Config, "peers", len(cfg.Peers))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP is caught from here on: its default action would kill a
	// client that is still starting. One that arrives before the tunnel
	// runs is served as soon as it does.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	peers, err := resolvePeers(ctx, cfg)
	if err != nil {
		return err
	}
	t, err := bringUp(iface, cfg, peers, c, log)
	if err != nil {
		return err
	}
	return t.run(ctx, hup, c.Config, log)
}

// resolvePeers turns the config's peers into the tunnel's, resolving host
// name endpoints.
func resolvePeers(ctx context.Context, cfg *config.Config) ([]stages.PeerConfig, error) {
	out := make([]stages.PeerConfig, 0, len(cfg.Peers))
	for i := range cfg.Peers {
		pe := &cfg.Peers[i]
		ep, err := pe.ResolveEndpoint(ctx, net.DefaultResolver.LookupNetIP)
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
	uapi   *uapi.Server
	http   []*metrics.Server // metrics and pprof endpoints, if asked for
	cfg    *config.Config
	peers  []stages.PeerConfig // as last applied from the file
	mu     sync.Mutex          // serialises config changes: reloads and UAPI sets
}

// bringUp creates the socket, the TUN device, the tunnel, the interface
// configuration and the UAPI socket, in that order; on failure it undoes
// what it did.
func bringUp(iface string, cfg *config.Config, peers []stages.PeerConfig, c *standaloneCmd, log *slog.Logger) (*running, error) {
	// Rebindable, so that wg set can move it to another port.
	udp, err := tunio.ListenRebindable(netip.AddrPortFrom(netip.IPv6Unspecified(), cfg.Interface.ListenPort), tunio.UDPOptions{})
	if err != nil {
		return nil, fmt.Errorf("headless-client: UDP port %d: %w", cfg.Interface.ListenPort, err)
	}
	dev, err := tunio.CreateTUN(iface, cfg.Interface.MTU)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("headless-client: creating TUN device %s: %w", iface, err)
	}
	tun, err := stages.New(stages.Config{
		PrivateKey:    cfg.Interface.PrivateKey,
		Peers:         peers,
		Engine:        stages.Engine(c.Engine),
		Workers:       c.Workers,
		QueueCapacity: c.QueueCapacity,
	}, dev, udp, nil, log)
	if err != nil {
		dev.Close()
		udp.Close()
		return nil, err
	}
	routes, endpoints := routesOf(peers)
	ifc, err := ifsetup.Up(ifsetup.Config{
		Name:      iface,
		MTU:       cfg.Interface.MTU,
		Addresses: cfg.Interface.Addresses,
		Routes:    routes,
		Endpoints: endpoints,
		DNS: ifsetup.DNSConfig{
			Mode:    c.DNSControl,
			Servers: cfg.Interface.DNS,
			Search:  cfg.Interface.DNSSearch,
			Backup:  c.StateDir + "/resolv.conf." + iface,
		},
	}, log)
	if err != nil {
		dev.Close()
		udp.Close()
		return nil, err
	}
	r := &running{iface: iface, tunnel: tun, ifc: ifc, cfg: cfg, peers: peers}
	if err := r.listenHTTP(c, log); err != nil {
		ifc.Down()
		dev.Close()
		udp.Close()
		return nil, err
	}
	srv, err := uapi.Listen(uapi.SocketPath(iface), tun, &r.mu, log)
	if err != nil {
		for _, s := range r.http {
			s.Close()
		}
		ifc.Down()
		dev.Close()
		udp.Close()
		return nil, fmt.Errorf("headless-client: UAPI socket for %s: %w", iface, err)
	}
	r.uapi = srv
	return r, nil
}

// listenHTTP binds the metrics and pprof endpoints the flags ask for.
func (r *running) listenHTTP(c *standaloneCmd, log *slog.Logger) error {
	for _, ep := range []struct {
		what, addr string
		h          http.Handler
	}{
		{"metrics", c.MetricsAddr, metrics.NewMux(r.tunnel)},
		{"pprof", c.PprofAddr, metrics.PprofMux()},
	} {
		if ep.addr == "" {
			continue
		}
		s, err := metrics.Listen(ep.addr, ep.h, log.With("endpoint", ep.what))
		if err != nil {
			for _, prev := range r.http {
				prev.Close()
			}
			r.http = nil
			return fmt.Errorf("headless-client: %s endpoint %s: %w", ep.what, ep.addr, err)
		}
		log.Info("serving "+ep.what, "addr", s.Addr())
		r.http = append(r.http, s)
	}
	return nil
}

// run serves until ctx ends (SIGTERM, SIGINT) or the tunnel fails, and
// reloads on SIGHUP. It stops everything in order: the UAPI socket and
// the tunnel (whose device takes the interface with it), then the
// interface configuration that outlives the device (DNS).
func (r *running) run(ctx context.Context, hup <-chan os.Signal, cfgPath string, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	tunErr := make(chan error, 1)
	uapiDone := make(chan error, 1)
	go func() { tunErr <- r.tunnel.Serve(ctx) }()
	go func() { uapiDone <- r.uapi.Serve(ctx) }()
	httpDone := make(chan error, len(r.http))
	for _, s := range r.http {
		go func() { httpDone <- s.Serve(ctx) }()
	}
	log.Info("tunnel running", "listen_port", r.tunnel.LocalAddr().Port(), "public_key", r.tunnel.PublicKey(), "uapi", r.uapi.Path())
	sd, sdDone := notifySystemd(ctx, r.tunnel, log)

	var failed error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			sd.Reloading()
			r.reload(ctx, cfgPath, log)
			sd.Ready(sdnotify.TunnelStatus(r.tunnel.Peers(), time.Now(), nil))
		case err := <-tunErr:
			// The tunnel stopped by itself: a stage failed past its
			// supervisor's patience.
			failed = fmt.Errorf("headless-client: tunnel failed: %w", err)
			tunErr <- err
			break loop
		case err := <-uapiDone:
			log.Error("UAPI socket failed; wg can no longer reach this tunnel", "err", err)
			uapiDone <- nil
		}
	}
	log.Info("stopping")
	sd.Stopping()
	cancel()
	deadline := time.After(stopTimeout)
	waits := []chan error{tunErr, uapiDone, sdDone}
	for range r.http {
		waits = append(waits, httpDone)
	}
wait:
	for _, ch := range waits {
		select {
		case err := <-ch:
			if err != nil && failed == nil {
				failed = err
			}
		case <-deadline:
			if failed == nil {
				failed = errStopTimeout
			}
			break wait
		}
	}
	// Even after a timeout: restore DNS and remove what is left.
	if err := r.ifc.Down(); err != nil {
		log.Warn("removing interface configuration", "err", err)
	}
	if failed != nil {
		return failed
	}
	log.Info("stopped")
	return nil
}

// notifySystemd tells systemd, when it runs the client as a Type=notify
// service, that the tunnel is ready, and keeps it informed (STATUS=,
// WATCHDOG=1 while healthy) until ctx ends; done receives nil then. The
// notifier is nil, and ignores calls, outside such a service.
func notifySystemd(ctx context.Context, t *stages.Tunnel, log *slog.Logger) (sd *sdnotify.Notifier, done chan error) {
	done = make(chan error, 1)
	sd, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("cannot tell systemd how the tunnel is doing", "err", err)
	}
	if err := sd.Ready(sdnotify.TunnelStatus(t.Peers(), time.Now(), nil)); err != nil {
		log.Warn("cannot tell systemd the tunnel is ready", "err", err)
	}
	go func() { sd.Watch(ctx, t, log); done <- nil }()
	return sd, done
}
