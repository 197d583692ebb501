// Package watchdog feeds a watchdog only while a health check passes.
// Every interval it runs the check and, if it passed, pings. A service
// that is wedged or failing then misses its pings and the watchdog (such
// as systemd's WatchdogSec=) restarts it, while a healthy idle service
// keeps pinging. What a ping is (a datagram to systemd, say) is the
// caller's business: Ping does it.
package watchdog

import (
	"context"
	"log/slog"
	"time"

	"pipeguard/supervisor/clock"
)

// Config says how to check, how to ping and how often.
type Config struct {
	// Interval between checks. A watchdog that expects a ping every T
	// is served by T/2, as sd_watchdog_enabled(3) advises.
	Interval time.Duration
	// Check returns nil while the service is healthy at now.
	Check func(now time.Time) error
	// Ping tells the watchdog all is well; called after each passing
	// check, and only then.
	Ping func()
	// Report, if set, gets every check's result (nil: healthy), for a
	// status line.
	Report func(err error)
	// Log gets a line when health changes: a warning with the reason
	// when pings stop, and a notice when they resume. Nil: discard.
	Log *slog.Logger
	// Clock is nil for the real clock; tests pass a fake one.
	Clock clock.Clock
}

// Run checks and pings every interval until ctx ends, the first time one
// interval after it starts: it is meant to start as the service reports
// itself ready, which is when systemd's watchdog starts counting. It
// starts no goroutine.
func Run(ctx context.Context, c Config) {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	done := ctx.Done()
	t := c.Clock.NewTimer(c.Interval)
	defer t.Stop()
	healthy := true // as the watchdog assumes at start: only a change is logged
	for {
		select {
		case <-done:
			return
		case <-t.C():
		}
		err := c.Check(c.Clock.Now())
		switch {
		case err == nil && !healthy:
			c.Log.Info("healthy again; watchdog pings resume")
		case err != nil && healthy:
			c.Log.Warn("unhealthy; watchdog pings withheld until it recovers", "err", err)
		}
		healthy = err == nil
		if healthy {
			c.Ping()
		}
		if c.Report != nil {
			c.Report(err)
		}
		t.Reset(c.Interval)
	}
}
