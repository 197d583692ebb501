// Package sdnotify tells systemd how the tunnel is doing, over the
// service notification protocol of sd_notify(3): READY=1 once the
// interface is up and configured, STATUS= lines about its peers,
// RELOADING=1 and READY=1 around a reload, STOPPING=1, and WATCHDOG=1
// only while the dataplane is healthy (package supervisor/watchdog and
// stages.HealthCheck decide that), so that WatchdogSec= restarts a
// wedged tunnel and leaves a working one alone.
//
// The protocol is a datagram of newline-separated VAR=value lines to the
// unix socket named by $NOTIFY_SOCKET (a leading '@' names an abstract
// socket); systemd sets it for Type=notify services, and $WATCHDOG_USEC
// (with $WATCHDOG_PID) when WatchdogSec= is set. That is a few lines,
// written here rather than taken from go-systemd's daemon package, which
// has no MONOTONIC_USEC for RELOADING=1 and would add a module to every
// build for what the tests below check against a real socket anyway.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends notifications to the service manager. A nil *Notifier,
// what FromEnv returns when the process was not started as a Type=notify
// service, ignores every call, so callers need no checks. Its methods are
// safe for concurrent use; notifications arrive in the order sent.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration // WATCHDOG_USEC, when meant for this process; 0: none
	mu       sync.Mutex    // serialises sends
}

// ErrBadEnv wraps the reason FromEnv refuses a malformed environment.
var ErrBadEnv = errors.New("sdnotify: bad environment")

// FromEnv returns a notifier for $NOTIFY_SOCKET, or nil (and no error)
// when it is not set. The watchdog interval comes from $WATCHDOG_USEC,
// ignored when $WATCHDOG_PID names another process (a child that
// inherited the environment).
func FromEnv() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		// systemd 254 also speaks vsock; a service on this machine never
		// gets that.
		return nil, fmt.Errorf("%w: NOTIFY_SOCKET=%q is neither a path nor an abstract socket", ErrBadEnv, path)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	if us := os.Getenv("WATCHDOG_USEC"); us != "" {
		if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
			return n, nil
		}
		v, err := strconv.ParseUint(us, 10, 63)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("%w: WATCHDOG_USEC=%q", ErrBadEnv, us)
		}
		n.watchdog = time.Duration(v) * time.Microsecond
	}
	return n, nil
}

// Send sends the state lines ("READY=1", "STATUS=...") in one datagram.
// Each call opens its own socket, as sd_notify does: the manager may have
// re-executed and made its socket anew since the last.
func (n *Notifier) Send(states ...string) error {
	if n == nil {
		return nil
	}
	msg := strings.Join(states, "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says start-up (or a reload) is complete, with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", status2(status))
}

// Reloading says a reload begins; Ready ends it. MONOTONIC_USEC is the
// time of the request on CLOCK_MONOTONIC, which systemd's notify-reload
// services must send and notify services may.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return n.Send("RELOADING=1")
	}
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1e3, 10))
}

// Stopping says an orderly stop begins.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status sends a status line, shown by `systemctl status`.
func (n *Notifier) Status(s string) error { return n.Send(status2(s)) }

// Watchdog pings the watchdog.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// WatchdogInterval is the watchdog's timeout, or 0 when systemd asked for
// none (or the notifier is nil). Ping at half of it.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// status2 is one STATUS= line: the protocol is line based.
func status2(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}
