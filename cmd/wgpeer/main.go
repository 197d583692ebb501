// Command wgpeer runs a WireGuard peer built from wireguard-go
// (golang.zx2c4.com/wireguard/device) on a real TUN device: the
// independent implementation that PipeGuard's end-to-end tests and
// benchmarks talk to, or run against itself as a baseline.
//
// It reads a wg-quick style config file (the headless client's format and
// parser, package config), configures the device through wireguard-go's
// own UAPI (IpcSet), sets the interface's MTU, addresses and a route per
// AllowedIPs, and runs until SIGTERM or SIGINT, when it closes the device
// (which removes the interface and its routes) and exits 0.
//
//	wgpeer --config peer.conf --interface wgp0 [--mtu 1280] [--uapi]
//
// With --uapi it also serves /var/run/wireguard/<interface>.sock, so that
// `wg show` works on it. It needs CAP_NET_ADMIN (root).
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	"pipeguard/cmd/headless-client/config"
)

// cli is wgpeer's command line.
type cli struct {
	Config    string `help:"WireGuard config file (wg-quick format)." required:""`
	Interface string `help:"Interface name; default: the config file's name without .conf."`
	MTU       int    `help:"Interface MTU; 0: the config's MTU (1280 if it sets none). Unlike the config, the flag may exceed 1280, for baselines at wireguard-go's usual 1420." default:"0"`
	UAPI      bool   `help:"Serve the UAPI socket /var/run/wireguard/<interface>.sock so wg(8) works."`
	LogLevel  string `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error"`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("wgpeer"), kong.Description("A wireguard-go peer on a real TUN device, for tests and benchmarks."))
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if err := c.run(log); err != nil {
		fmt.Fprintln(os.Stderr, "wgpeer:", err)
		os.Exit(1)
	}
}

// settings is what run needs, from the flags and the file.
type settings struct {
	iface string
	mtu   int
	uapi  bool
	cfg   *config.Config
	ipc   string // the device configuration in wireguard-go's UAPI set format
}

func (c *cli) settings(ctx context.Context) (*settings, error) {
	cfg, err := config.Load(c.Config)
	if err != nil {
		return nil, err
	}
	iface := c.Interface
	if iface == "" {
		iface, err = config.InterfaceName(c.Config)
	} else {
		err = config.CheckInterfaceName(iface)
	}
	if err != nil {
		return nil, err
	}
	mtu := c.MTU
	if mtu == 0 {
		mtu = cfg.Interface.MTU
	}
	if mtu < config.MinMTU || mtu > 65535 {
		return nil, fmt.Errorf("wgpeer: --mtu %d not in %d..65535", mtu, config.MinMTU)
	}
	ipc, err := ipcConfig(ctx, cfg, net.DefaultResolver.LookupNetIP)
	if err != nil {
		return nil, err
	}
	return &settings{iface: iface, mtu: mtu, uapi: c.UAPI, cfg: cfg, ipc: ipc}, nil
}

// ipcConfig writes cfg as a UAPI set request body (without "set=1"),
// resolving endpoints with lookup: keys in hex, one line per setting.
func ipcConfig(ctx context.Context, cfg *config.Config, lookup config.Resolver) (string, error) {
	var b strings.Builder
	hexKey := func(name string, k [32]byte) { fmt.Fprintf(&b, "%s=%s\n", name, hex.EncodeToString(k[:])) }
	hexKey("private_key", cfg.Interface.PrivateKey)
	fmt.Fprintf(&b, "listen_port=%d\nreplace_peers=true\n", cfg.Interface.ListenPort)
	for i := range cfg.Peers {
		pe := &cfg.Peers[i]
		hexKey("public_key", pe.PublicKey)
		if !pe.PresharedKey.IsZero() {
			hexKey("preshared_key", pe.PresharedKey)
		}
		ep, err := pe.ResolveEndpoint(ctx, lookup)
		if err != nil {
			return "", err
		}
		if ep.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", ep)
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\nreplace_allowed_ips=true\n", int(pe.PersistentKeepalive.Seconds()))
		for _, p := range pe.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", p)
		}
	}
	return b.String(), nil
}
