package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/signal"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"pipeguard/tunio"
)

// run brings the peer up and serves until SIGTERM or SIGINT.
func (c *cli) run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := c.settings(ctx)
	if err != nil {
		return err
	}
	tdev, err := tun.CreateTUN(s.iface, s.mtu)
	if err != nil {
		return fmt.Errorf("creating TUN %s: %w", s.iface, err)
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), wgLogger(log))
	defer dev.Close() // closes the TUN: the interface and its routes go
	if err := dev.IpcSet(s.ipc); err != nil {
		return fmt.Errorf("configuring the device: %w", err)
	}
	if err := dev.Up(); err != nil {
		return fmt.Errorf("device up: %w", err)
	}
	if err := configure(s); err != nil {
		return err
	}
	if s.uapi {
		ln, err := serveUAPI(s.iface, dev, log)
		if err != nil {
			return err
		}
		defer ln.Close() // removes the socket file
	}
	log.Info("wgpeer up", "interface", s.iface, "mtu", s.mtu, "listen_port", s.cfg.Interface.ListenPort,
		"public_key", s.cfg.Interface.PrivateKey.Public(), "peers", len(s.cfg.Peers), "uapi", s.uapi)
	select {
	case <-ctx.Done():
		log.Info("wgpeer stopping")
	case <-dev.Wait():
		return errors.New("device closed unexpectedly")
	}
	return nil
}

// configure sets the interface's addresses, brings it up and routes each
// peer's AllowedIPs into it. (wireguard-go's CreateTUN already set the
// MTU.)
func configure(s *settings) error {
	for _, a := range s.cfg.Interface.Addresses {
		if err := tunio.AddAddress(s.iface, a); err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	if err := tunio.SetLinkUp(s.iface); err != nil {
		return fmt.Errorf("link up: %w", err)
	}
	seen := map[netip.Prefix]bool{}
	for _, pe := range s.cfg.Peers {
		for _, p := range pe.AllowedIPs {
			if seen[p] {
				continue
			}
			seen[p] = true
			// EEXIST: the kernel's own route for an address's subnet.
			if err := tunio.AddRoute(s.iface, p); err != nil && !errors.Is(err, syscall.EEXIST) {
				return fmt.Errorf("route %s: %w", p, err)
			}
		}
	}
	return nil
}

// serveUAPI opens wireguard-go's own UAPI socket and hands connections to
// the device. Closing the returned listener removes the socket.
func serveUAPI(iface string, dev *device.Device, log *slog.Logger) (net.Listener, error) {
	f, err := ipc.UAPIOpen(iface)
	if err != nil {
		return nil, fmt.Errorf("UAPI socket: %w", err)
	}
	ln, err := ipc.UAPIListen(iface, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("UAPI socket: %w", err)
	}
	go func() { // ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	log.Debug("UAPI socket open", "interface", iface)
	return ln, nil
}

// wgLogger sends wireguard-go's log lines to slog: its verbose lines at
// debug level, its errors at warn (most are per-packet trouble it
// survives).
func wgLogger(log *slog.Logger) *device.Logger {
	return &device.Logger{
		Verbosef: func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
	}
}
