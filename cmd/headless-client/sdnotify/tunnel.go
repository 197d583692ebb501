package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/supervisor/watchdog"
)

// statusEvery is how often STATUS= is refreshed when no watchdog asks for
// more: often enough that `systemctl status` tells a fresh handshake.
const statusEvery = 15 * time.Second

// liveSession is how recent a handshake must be for its session to still
// carry traffic: WireGuard rejects a session 180 s after its handshake.
const liveSession = noise.RejectAfterTime

// Watch keeps systemd informed about t until ctx ends. Every check
// interval (half the watchdog timeout, or statusEvery if that is shorter
// or there is no watchdog) it checks the dataplane's health, sends
// WATCHDOG=1 if it is healthy and systemd asked for a watchdog, and
// refreshes STATUS=. A stage counts as stalled when values wait in its
// input at two checks in a row with none consumed between them. A nil
// notifier returns at once.
func (n *Notifier) Watch(ctx context.Context, t *stages.Tunnel, log *slog.Logger) {
	if n == nil {
		return
	}
	interval := statusEvery
	if wd := n.WatchdogInterval(); wd > 0 {
		interval = min(interval, wd/2)
	}
	hc := t.NewHealthCheck(interval / 2)
	ping := func() {}
	if n.WatchdogInterval() > 0 {
		log.Info("systemd watchdog on: pinging while the dataplane is healthy", "timeout", n.WatchdogInterval(), "interval", interval)
		ping = func() {
			if err := n.Watchdog(); err != nil {
				log.Warn("watchdog ping failed", "err", err)
			}
		}
	}
	watchdog.Run(ctx, watchdog.Config{
		Interval: interval,
		Check:    hc.Check,
		Ping:     ping,
		Report: func(err error) {
			if serr := n.Status(TunnelStatus(t.Peers(), time.Now(), err)); serr != nil {
				log.Debug("status update failed", "err", serr)
			}
		},
		Log: log,
	})
}

// TunnelStatus is the STATUS= line for a tunnel with peers at now, and
// the health check's verdict (nil: healthy), e.g.
// "3 peers, 2 with a handshake in the last 3 min".
func TunnelStatus(peers []stages.PeerStatus, now time.Time, health error) string {
	live := 0
	for _, p := range peers {
		if !p.LastHandshake.IsZero() && now.Sub(p.LastHandshake) < liveSession {
			live++
		}
	}
	noun := "peers"
	if len(peers) == 1 {
		noun = "peer"
	}
	s := fmt.Sprintf("%d %s, %d with a handshake in the last 3 min", len(peers), noun, live)
	if health != nil {
		s += "; unhealthy: " + health.Error()
	}
	return s
}
