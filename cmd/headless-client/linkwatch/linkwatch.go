// Package linkwatch follows the tunnel interface's link notifications
// (rtnetlink RTNLGRP_LINK) and keeps the interface the way the tunnel
// needs it, whichever command runs it (standalone, or the empty tunnel
// that wg-quick configures):
//
//   - The MTU is held at the tunnel's limit. PipeGuard carries inner
//     packets of at most 1280 bytes (its packets are fixed arrays of that
//     size); wg-quick sets 1420 when its config has no MTU line. When
//     something raises the MTU above the limit, the watcher sets it back
//     at once and logs one warning that says why and what to change. With
//     the MTU back at 1280 the host's own stack refuses larger packets
//     loudly (ping -M do -s 1400 says "message too long, mtu=1280") and
//     TCP chooses its MSS from 1280, rather than packets vanishing inside
//     the tunnel. (The other standard outcome, answering each oversized
//     packet with ICMP "fragmentation needed"/"packet too big", would
//     leave every new TCP connection to find the MTU by loss first.)
//   - When the link comes back up after being down (`ip link set IFACE
//     down; up` makes the kernel drop its routes and IPv6 addresses), the
//     OnUp hook runs: standalone restores what it owns.
package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"pipeguard/tunio"
)

// Config is what to watch and how to react.
type Config struct {
	Name string // the interface
	// MaxMTU is the highest MTU the interface may have; a higher one is
	// set back to MaxMTU. 0 leaves the MTU alone.
	MaxMTU int
	// OnUp runs, on Serve's goroutine, when the link comes up after it
	// was down, or after notifications were lost while it is up. nil: no
	// hook.
	OnUp func() error
}

// Watcher follows one interface. Make it with New (in the interface's
// network namespace), run Serve once, and Close it if Serve never ran.
type Watcher struct {
	cfg    Config
	log    *slog.Logger
	events *tunio.LinkEvents
	rt     *tunio.RTNL
	index  int
	up     bool // last known administrative state; owned by Serve
}

// New subscribes to link notifications in the calling thread's network
// namespace, where the interface cfg.Name must exist. Nothing that
// happens to the link from here on is missed, also before Serve runs.
// log should name the interface already, as the commands' loggers do.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	events, err := tunio.SubscribeLinks()
	if err != nil {
		return nil, fmt.Errorf("linkwatch: %w", err)
	}
	rt, err := tunio.OpenRTNL()
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("linkwatch: %w", err)
	}
	st, err := rt.Link(cfg.Name)
	if err != nil {
		events.Close()
		rt.Close()
		return nil, fmt.Errorf("linkwatch: %s: %w", cfg.Name, err)
	}
	return &Watcher{cfg: cfg, log: log.With("watch", "link"), events: events, rt: rt, index: st.Index, up: st.Up}, nil
}

// Close releases the subscription; Serve does it when it returns.
func (w *Watcher) Close() error {
	w.events.Close()
	w.rt.Close()
	return nil
}

// Serve follows the link until ctx ends or the interface is deleted, and
// returns nil then. It returns an error only when the notifications
// cannot be read any more.
func (w *Watcher) Serve(ctx context.Context) error {
	w.log.Debug("link watcher start")
	defer w.log.Debug("link watcher stop")
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.events.Close() })
	defer stop()
	// The state as it is now: what happened before New is not in the
	// notifications.
	if err := w.resync(false); err != nil {
		return err
	}
	for {
		evs, err := w.events.Next()
		switch {
		case ctx.Err() != nil || errors.Is(err, tunio.ErrClosed):
			return nil
		case errors.Is(err, tunio.ErrEventsLost):
			w.log.Warn("link notifications were lost; reading the link's state afresh")
			if err := w.resync(true); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("linkwatch: %w", err)
		}
		for _, ev := range evs {
			if ev.Index != w.index {
				continue
			}
			if ev.Deleted {
				w.log.Debug("interface deleted; nothing left to watch")
				return nil
			}
			w.handle(ev.LinkState, false)
		}
	}
}

// resync reads the link's state and handles it as a notification;
// lost tells that notifications were lost, so OnUp runs if the link is up
// (a down and up may have been missed).
func (w *Watcher) resync(lost bool) error {
	st, err := w.rt.Link(w.cfg.Name)
	if err != nil {
		if errors.Is(err, tunio.ErrInvalidInterface) || isNoDevice(err) {
			return nil // deleted meanwhile; the tunnel notices that itself
		}
		return fmt.Errorf("linkwatch: %s: %w", w.cfg.Name, err)
	}
	if st.Index != w.index {
		return nil // another interface of the same name now
	}
	w.handle(st, lost)
	return nil
}

// handle acts on the link's state: the MTU first, then a return to up.
func (w *Watcher) handle(st tunio.LinkState, lost bool) {
	if w.cfg.MaxMTU > 0 && st.MTU > w.cfg.MaxMTU {
		// A change can be reported more than once; one that was set
		// back already must not be set back (and warned about) again.
		if now, err := w.rt.Link(w.cfg.Name); err != nil || now.Index != w.index || now.MTU > w.cfg.MaxMTU {
			w.holdMTU(st.MTU)
		}
	}
	wasUp := w.up
	w.up = st.Up
	if st.Up && (!wasUp || lost) && w.cfg.OnUp != nil {
		if err := w.cfg.OnUp(); err != nil {
			w.log.Error("link up again, but restoring its configuration failed", "err", err)
		}
	}
}

// holdMTU sets the MTU back and warns once for this raise.
func (w *Watcher) holdMTU(raised int) {
	if err := w.rt.SetMTU(w.cfg.Name, w.cfg.MaxMTU); err != nil {
		w.log.Error("interface MTU raised above what the tunnel carries, and setting it back failed: packets above the limit are dropped",
			"mtu", raised, "limit", w.cfg.MaxMTU, "err", err)
		return
	}
	w.log.Warn(fmt.Sprintf("interface MTU %d set back to %d: PipeGuard carries packets of at most %d bytes, and larger ones could only be dropped; "+
		"set MTU = %d where the MTU is configured (wg-quick sets 1420 when its [Interface] has no MTU line)",
		raised, w.cfg.MaxMTU, w.cfg.MaxMTU, w.cfg.MaxMTU),
		"raised_to", raised, "mtu", w.cfg.MaxMTU)
}

// isNoDevice reports the kernel's "no such device".
func isNoDevice(err error) bool { return errors.Is(err, syscall.ENODEV) }
