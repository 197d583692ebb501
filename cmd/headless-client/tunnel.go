package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"

	"pipeguard/cmd/headless-client/addrwatch"
	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/daemon"
	"pipeguard/cmd/headless-client/lifecycle"
	"pipeguard/cmd/headless-client/linkwatch"
	"pipeguard/cmd/headless-client/metrics"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/stages"
	"pipeguard/tunio"
)

// tunnelCmd is the empty tunnel, wireguard-go's model: a TUN device with
// no key, no peers, no addresses and its link down, and its UAPI socket,
// waiting for `wg setconf`, `wg set`, wg-quick or a controller to
// configure it. It stops on SIGTERM, SIGINT, or the deletion of its
// interface (how wg-quick down stops a userspace tunnel).
type tunnelCmd struct {
	Foreground     bool   `short:"f" help:"Stay in the foreground. Otherwise (and unless WG_PROCESS_FOREGROUND=1) detach once the interface and its socket exist, as wireguard-go does."`
	Interface      string `arg:"" help:"Interface name (1 to 15 letters, digits and _=+.-)."`
	LogDir         string `help:"Also write JSON log lines to files in this directory, rotated by size." env:"LOG_DIR"`
	StateDir       string `help:"${state_dir_help}" env:"PIPEGUARD_STATE_DIR"`
	dataplaneFlags `embed:""`
}

func (c *tunnelCmd) Run(env *runEnv) error {
	if err := config.CheckInterfaceName(c.Interface); err != nil {
		return err
	}
	if err := c.queues().check(); err != nil {
		return err
	}
	c.StateDir = stateDirFor(c.StateDir, os.Geteuid())
	if !c.Foreground && !daemon.Foreground() {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("headless-client: finding this program to detach: %w", err)
		}
		// As wireguard-go: the detached process keeps the output only
		// when LOG_LEVEL asks for logs; LOG_DIR files work either way.
		return daemon.Detach(exe, c.childArgs(env.logLevel), os.Getenv("LOG_LEVEL") != "")
	}
	report := daemon.FromEnv() // nil unless started by Detach
	err := c.serve(env, report)
	if err != nil {
		report.Failed(err) // only before Ready: the parent prints it
	}
	return err
}

// childArgs is the detached process's command line: this command in the
// foreground, with the flags given to this one.
func (c *tunnelCmd) childArgs(logLevel string) []string {
	args := []string{"--log-level", logLevel, "tunnel", "--foreground",
		"--state-dir", c.StateDir, "--engine", c.Engine,
		"--workers", strconv.Itoa(c.Workers), "--cpu-scheduling", c.CPUScheduling}
	args = append(args, c.queues().args()...)
	if c.LogDir != "" {
		args = append(args, "--log-dir", c.LogDir)
	}
	if c.MetricsAddr != "" {
		args = append(args, "--metrics-addr", c.MetricsAddr)
	}
	if c.PprofAddr != "" {
		args = append(args, "--pprof-addr", c.PprofAddr)
	}
	return append(args, "--", c.Interface)
}

// serve creates the empty tunnel, reports it ready, and runs it until it
// is stopped or its interface is deleted, both a clean stop.
func (c *tunnelCmd) serve(env *runEnv, report *daemon.Reporter) error {
	iface := c.Interface
	log, closeLog, err := withLogDir(env.stderr, env.logLevel, c.LogDir, iface)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	if err := checkNetAdmin(); err != nil {
		return err
	}
	if err := checkStateDir(c.StateDir); err != nil {
		return err
	}
	if err := uapi.CheckSocketDir(); err != nil {
		return err
	}
	id, idFrom, err := deviceID(os.Getenv("PIPEGUARD_ID"), c.StateDir)
	if err != nil {
		return err
	}
	log = log.With("interface", iface)
	log.Info("starting an empty tunnel", "device_id", id, "device_id_from", idFrom)
	c.schedule(log)
	ctx, stop := env.signals.Context(context.Background())
	defer stop()

	t, srv, link, addrs, endpoints, err := c.bringUp(log)
	if err != nil {
		return err
	}
	var web []lifecycle.Service
	for _, s := range endpoints {
		web = append(web, s)
	}
	log.Info("tunnel running, empty: configure it over its UAPI socket", "uapi", srv.Path(),
		"listen_port", t.LocalAddr().Port())
	report.Ready()
	sd, watch := notifySystemd(t, log)
	err = lifecycle.Run(ctx, lifecycle.Parts{
		Iface:  iface,
		Tunnel: t,
		UAPI:   srv,
		Watch:  watch,
		Link:   link,
		Addrs:  addrs,
		HTTP:   web,
		Reload: func(context.Context) {
			log.Info("SIGHUP: nothing to reload; this tunnel is configured over its UAPI socket")
		},
		Stopping: func() { sd.Stopping() },
	}, env.signals.Hup(), log)
	var deleted *lifecycle.DeletedError
	if errors.As(err, &deleted) {
		// wg-quick down, or anyone: the interface is gone, and so is
		// the reason to run.
		log.Info("stopped: interface " + iface + " was deleted")
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// bringUp creates the UDP socket (on a free port, rebindable so that wg
// set listen-port works), the TUN device (link down, no addresses), the
// tunnel with no key and no peers, the UAPI socket, the link watcher
// that holds the MTU at 1280 (wg-quick sets 1420), the address watcher
// that keeps the addresses peers are answered from true, and the metrics
// and pprof endpoints the flags ask for; on failure it undoes what it
// did.
func (c *tunnelCmd) bringUp(log *slog.Logger) (*stages.Tunnel, *uapi.Server, *linkwatch.Watcher, *addrwatch.Watcher, []*metrics.Server, error) {
	udp, err := tunio.ListenRebindable(netip.AddrPortFrom(netip.IPv6Unspecified(), 0), c.queues().udpOptions())
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("headless-client: UDP socket: %w", err)
	}
	dev, err := tunio.CreateTUN(c.Interface, config.DefaultMTU)
	if err != nil {
		udp.Close()
		return nil, nil, nil, nil, nil, fmt.Errorf("headless-client: creating TUN device %s: %w", c.Interface, err)
	}
	link, err := linkwatch.New(linkwatch.Config{Name: c.Interface, MaxMTU: config.MaxMTU}, log)
	if err != nil {
		dev.Close()
		udp.Close()
		return nil, nil, nil, nil, nil, err
	}
	sc := stages.Config{Engine: stages.Engine(c.Engine), Workers: c.Workers}
	c.queues().apply(&sc)
	t, err := stages.New(sc, dev, udp, nil, log)
	if err != nil {
		link.Close()
		dev.Close()
		udp.Close()
		return nil, nil, nil, nil, nil, err
	}
	addrs, err := addrwatch.New(t, log)
	if err != nil {
		link.Close()
		dev.Close()
		udp.Close()
		return nil, nil, nil, nil, nil, err
	}
	endpoints, err := metrics.ListenEndpoints(t, c.MetricsAddr, c.PprofAddr, log)
	if err != nil {
		addrs.Close()
		link.Close()
		dev.Close()
		udp.Close()
		return nil, nil, nil, nil, nil, err
	}
	// UAPI requests are serialised among themselves; there is no reload
	// to serialise them with.
	srv, err := uapi.Open(c.Interface, t, &sync.Mutex{}, log)
	if err != nil {
		for _, s := range endpoints {
			s.Close()
		}
		addrs.Close()
		link.Close()
		dev.Close()
		udp.Close()
		return nil, nil, nil, nil, nil, fmt.Errorf("headless-client: UAPI socket for %s: %w", c.Interface, err)
	}
	return t, srv, link, addrs, endpoints, nil
}
