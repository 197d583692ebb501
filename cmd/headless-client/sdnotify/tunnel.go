package sdnotify

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"strings"
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
			if serr := n.Status(TunnelStatus(t.AllPeers(), time.Now(), err)); serr != nil {
				log.Debug("status update failed", "err", serr)
			}
		},
		Log: log,
	})
}

// TunnelStatus is the STATUS= line for a tunnel with peers at now, and
// the health check's verdict (nil: healthy), e.g.
// "3 peers, 2 with a handshake in the last 3 min; without a session:
// AbCdEfGh (not answering for 45s)". The peers without a live session
// are named by the start of their public key, as in the log, at most
// statusNames of them. It streams the peers once and keeps none, so that
// a gateway's 100,000 cost it time, not memory.
func TunnelStatus(peers iter.Seq[stages.PeerStatus], now time.Time, health error) string {
	live, n := 0, 0
	var without []string
	for p := range peers {
		n++
		if !p.LastHandshake.IsZero() && now.Sub(p.LastHandshake) < liveSession {
			live++
			continue
		}
		if len(without) == statusNames {
			continue
		}
		name := p.PublicKey.String()[:8]
		if !p.SilentSince.IsZero() {
			name += fmt.Sprintf(" (not answering for %v)", now.Sub(p.SilentSince).Round(time.Second))
		}
		without = append(without, name)
	}
	noun := "peers"
	if n == 1 {
		noun = "peer"
	}
	s := fmt.Sprintf("%d %s, %d with a handshake in the last 3 min", n, noun, live)
	if len(without) > 0 {
		s += "; without a session: " + strings.Join(without, ", ")
		if more := n - live - len(without); more > 0 {
			s += fmt.Sprintf(" and %d more", more)
		}
	}
	if health != nil {
		s += "; unhealthy: " + health.Error()
	}
	return s
}

// statusNames is how many peers without a session the status line names:
// `systemctl status` shows one line, and a gateway may have thousands.
const statusNames = 3
