// Package addrwatch keeps the local addresses the tunnel answers its peers
// from true to the host's network. The tunnel answers each peer from the
// host's address the peer wrote to (package stages), as kernel WireGuard
// does; the kernel also drops such an address once it no longer fits, and
// the watcher does that for a tunnel in user space:
//
//   - an address removed from the host is forgotten at once, by every
//     peer that was answered from it;
//   - when routes or policy rules change, each remembered address is kept
//     only while a datagram to its peer from it, with the tunnel's
//     firewall mark, leaves by the interface the peer's datagram came in
//     on;
//   - when notifications were lost, every remembered address is
//     forgotten.
//
// A forgotten address costs little: routing picks the source until the
// peer's next datagram says again where it writes to. (A send that the
// kernel refuses for its source forgets the address too, without the
// watcher: this is the quicker path, before anything is sent.)
package addrwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"pipeguard/tunio"
)

// Tunnel is what the watcher needs of the tunnel (*stages.Tunnel).
type Tunnel interface {
	ForgetLocalAddr(addr netip.Addr)
	ForgetLocalAddrs()
	CheckLocalAddrs(routeOut func(dst, src netip.Addr) (int, error)) int
	FwMark() uint32
}

// Check pacing: a burst of route changes (a link going down takes all
// its routes) is checked once at its start and once after it, not once
// per route. The checks ask the kernel one route per peer that has a
// remembered address, so the gap between two grows with what a check
// cost, keeping the watcher under about a tenth of a core however many
// peers there are; minCheckGap keeps a small tunnel quick to follow
// (a ping right after `ip route add` already leaves the new way).
const (
	minCheckGap = 10 * time.Millisecond
	checkCost   = 10 // gap = checkCost × the last check's duration, at least minCheckGap
)

// Watcher follows the host's addresses and routes for one tunnel. Make it
// with New (in the tunnel's network namespace), run Serve once, and Close
// it if Serve never ran.
type Watcher struct {
	t      Tunnel
	log    *slog.Logger
	events *tunio.NetEvents
	rt     *tunio.RTNL
}

// New subscribes to the address and routing notifications of the calling
// thread's network namespace, where the tunnel's socket is.
func New(t Tunnel, log *slog.Logger) (*Watcher, error) {
	events, err := tunio.SubscribeNet()
	if err != nil {
		return nil, fmt.Errorf("addrwatch: %w", err)
	}
	rt, err := tunio.OpenRTNL()
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("addrwatch: %w", err)
	}
	return &Watcher{t: t, log: log.With("watch", "addresses"), events: events, rt: rt}, nil
}

// Close releases the subscription; Serve does it when it returns.
func (w *Watcher) Close() error {
	w.events.Close()
	w.rt.Close()
	return nil
}

// Serve follows the notifications until ctx ends, and returns nil then. It
// returns an error only when they cannot be read any more.
func (w *Watcher) Serve(ctx context.Context) error {
	w.log.Debug("address watcher start")
	defer w.log.Debug("address watcher stop")
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.events.Close() })
	defer stop()
	var (
		pending bool      // routing changed since the last check
		last    time.Time // when the last check ended
		gap     = minCheckGap
	)
	for {
		wait := time.Duration(0) // nothing pending: until something comes
		if pending {
			wait = max(gap-time.Since(last), time.Millisecond)
		}
		evs, err := w.events.Next(wait)
		switch {
		case ctx.Err() != nil || errors.Is(err, tunio.ErrClosed):
			return nil
		case errors.Is(err, tunio.ErrEventsLost):
			w.log.Info("address notifications were lost; answering every peer from the address routing picks until it writes again")
			w.t.ForgetLocalAddrs()
			continue
		case err != nil:
			return fmt.Errorf("addrwatch: %w", err)
		}
		for _, ev := range evs {
			switch ev.Kind {
			case tunio.AddrRemoved:
				w.t.ForgetLocalAddr(ev.Addr)
			case tunio.RoutingChanged:
				pending = true
			}
		}
		if pending && time.Since(last) >= gap {
			start := time.Now()
			if n := w.check(); n > 0 {
				w.log.Debug("routing changed: peers answered from the address routing picks until they write again", "peers", n)
			}
			last = time.Now()
			gap = max(minCheckGap, checkCost*last.Sub(start))
			pending = false
		}
	}
}

// check runs the tunnel's route check with the kernel's routing, and the
// tunnel's firewall mark as it is now.
func (w *Watcher) check() int {
	mark := w.t.FwMark()
	return w.t.CheckLocalAddrs(func(dst, src netip.Addr) (int, error) {
		return w.rt.RouteOut(dst, src, mark)
	})
}
