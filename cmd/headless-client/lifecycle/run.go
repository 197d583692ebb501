// Package lifecycle is what every long-running command of the client
// shares around a tunnel: serving it together with its UAPI socket and
// HTTP endpoints, reloading on SIGHUP, and stopping all of it in order
// within StopTimeout. The commands (standalone, tunnel) only wire their
// parts into a [Parts] and decide what to do before and after.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"pipeguard/tunio"
)

// StopTimeout is how long an orderly stop may take once the tunnel was
// told to stop: within the 2 s an admin (and systemd's patience) expects.
const StopTimeout = 2 * time.Second

// ErrStopTimeout means a part of the tunnel did not stop in time.
var ErrStopTimeout = errors.New("headless-client: tunnel did not stop within 2 s")

// Service is the supervisor's contract: Serve blocks until the service
// has stopped, and returns soon after ctx ends.
type Service interface {
	Serve(ctx context.Context) error
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(ctx context.Context) error

// Serve calls f(ctx).
func (f ServiceFunc) Serve(ctx context.Context) error { return f(ctx) }

// DeletedError is Run's error when the tunnel stopped because its
// interface was deleted from outside (ip link del, which is also how
// wg-quick down stops a userspace tunnel). errors.Is matches
// tunio.ErrDeviceGone.
type DeletedError struct {
	Iface string
}

func (e *DeletedError) Error() string {
	return "headless-client: interface " + e.Iface + " was deleted"
}

func (e *DeletedError) Unwrap() error { return tunio.ErrDeviceGone }

// Parts are what Run serves. Tunnel and UAPI are required.
type Parts struct {
	Iface  string // the interface's name, for logs and errors
	Tunnel Service
	UAPI   Service
	HTTP   []Service // metrics and pprof endpoints, if any
	// Watch, if set, runs beside the others until the stop (a service
	// manager's watchdog); it returning early ends nothing.
	Watch Service
	// Link, if set, follows the interface's link beside the others until
	// the stop (package linkwatch: the MTU held, routes restored after a
	// bounce); it returning early ends nothing. Run returns only after
	// it, so nothing is restored once the caller takes things down.
	Link Service
	// Addrs, if set, follows the host's addresses and routes beside the
	// others until the stop (package addrwatch: the local addresses peers
	// are answered from); it returning early ends nothing.
	Addrs Service
	// Reload is called on SIGHUP, from Run's goroutine; nil ignores it.
	Reload func(ctx context.Context)
	// Stopping, if set, is called once the stop begins (to tell a
	// service manager, to restore DNS), before any part is told to stop.
	Stopping func()
}

// Run serves p until ctx ends (SIGTERM, SIGINT) or a part fails, and
// calls p.Reload on each signal from hup. It then stops every part and
// waits for them, up to StopTimeout. It returns nil after an orderly
// stop, a *DeletedError if the interface was deleted, and otherwise the
// error that stopped it.
func Run(ctx context.Context, p Parts, hup <-chan os.Signal, log *slog.Logger) error {
	// The parts get a context of their own, which ends only after
	// Stopping has run: a stop from outside (ctx) must not reach the
	// tunnel before Stopping's work is done, such as restoring DNS while
	// the link is still there.
	partsCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	tunErr := make(chan error, 1)
	uapiDone := make(chan error, 1)
	go func() { tunErr <- p.Tunnel.Serve(partsCtx) }()
	go func() { uapiDone <- p.UAPI.Serve(partsCtx) }()
	httpDone := make(chan error, len(p.HTTP))
	for _, s := range p.HTTP {
		go func() { httpDone <- s.Serve(partsCtx) }()
	}
	watchDone := make(chan error, 1)
	if p.Watch != nil {
		go func() { watchDone <- p.Watch.Serve(partsCtx) }()
	} else {
		watchDone <- nil
	}
	linkDone := make(chan error, 1)
	if p.Link != nil {
		go func() { linkDone <- p.Link.Serve(partsCtx) }()
	} else {
		linkDone <- nil
	}
	addrsDone := make(chan error, 1)
	if p.Addrs != nil {
		go func() { addrsDone <- p.Addrs.Serve(partsCtx) }()
	} else {
		addrsDone <- nil
	}

	var failed error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			if p.Reload != nil {
				p.Reload(ctx)
			}
		case err := <-tunErr:
			tunErr <- err // for the wait below
			if ctx.Err() != nil {
				break loop // told to stop (it raced ctx.Done): the wait judges it
			}
			if errors.Is(err, tunio.ErrDeviceGone) {
				failed = &DeletedError{Iface: p.Iface}
				log.Warn("interface " + p.Iface + " was deleted; stopping")
				break loop
			}
			// The tunnel stopped by itself: a stage failed past its
			// supervisor's patience.
			failed = fmt.Errorf("headless-client: tunnel failed: %w", err)
			break loop
		case err := <-uapiDone:
			uapiDone <- err // for the wait below
			if ctx.Err() != nil {
				break loop // as for the tunnel
			}
			// The UAPI server retries what passes (such as the
			// open-file limit) by itself; what ends it leaves a tunnel
			// that wg can no longer reach. Stop, non-zero, so that a
			// service manager starts it afresh.
			if err == nil {
				err = errors.New("stopped by itself")
			}
			failed = fmt.Errorf("headless-client: UAPI socket failed: %w", err)
			break loop
		}
	}
	why := context.Cause(ctx) // the signal, for a stop from outside
	if failed != nil {
		why = failed
	}
	log.Info("stopping", "why", why)
	if p.Stopping != nil {
		p.Stopping()
	}
	cancel()
	deadline := time.After(StopTimeout)
	waits := []chan error{tunErr, uapiDone, watchDone, linkDone, addrsDone}
	for range p.HTTP {
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
				failed = ErrStopTimeout
			}
			break wait
		}
	}
	return failed
}
