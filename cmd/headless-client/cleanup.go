package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/dns"
	"pipeguard/cmd/headless-client/ifsetup"
	"pipeguard/cmd/headless-client/uapi"
)

// cleanupCmd restores normal routing after a full tunnel's client died
// with no restart to follow: it removes the policy rules and unreachable
// routes that its state file records (the fail-closed routing a crash
// leaves), and undoes its DNS settings, as the next start would. It
// refuses while a client serves the interface.
type cleanupCmd struct {
	Interface string `arg:"" help:"The tunnel's interface name."`
	StateDir  string `help:"The client's state directory, where it records its rules." default:"/var/lib/pipeguard" env:"PIPEGUARD_STATE_DIR"`
	// KeepAfterCrash is for the unit's ExecStopPost=, which systemd runs
	// after every stop, also after a crash it is about to restart.
	KeepAfterCrash bool `help:"As systemd's ExecStopPost=: when $SERVICE_RESULT says the client died by itself (systemd restarts it), keep the routing failed closed; after a stop (success, or a stop that timed out), restore it."`
}

// crashResults are the values of systemd's $SERVICE_RESULT after which
// Restart=on-failure starts the client again: its own exit with an error
// (the interface was deleted, a part failed), a signal, a core dump, the
// watchdog. The fail-closed routing must stay until that start takes it
// over. After "success" (a stop) or "timeout" (a stop the client did not
// finish in time; also a start that hung, which is rare) it goes.
var crashResults = []string{"exit-code", "signal", "core-dump", "watchdog"}

func (c *cleanupCmd) Run(env *runEnv) error {
	if err := config.CheckInterfaceName(c.Interface); err != nil {
		return err
	}
	if res := os.Getenv("SERVICE_RESULT"); c.KeepAfterCrash && slices.Contains(crashResults, res) {
		env.log.Warn("the client of "+c.Interface+" died ("+res+"): its full tunnel stays failed closed until it starts again; "+
			"`pipeguard-headless-client cleanup "+c.Interface+"` restores normal routing", "interface", c.Interface)
		return nil
	}
	if served(c.Interface) {
		return fmt.Errorf("headless-client: a client serves %s (its UAPI socket %s answers): stop it (SIGTERM, systemctl stop), which restores normal routing",
			c.Interface, uapi.SocketPath(c.Interface))
	}
	removed, err := ifsetup.Cleanup(rulesFile(c.StateDir, c.Interface), c.Interface)
	if len(removed) > 0 {
		fmt.Fprintf(env.stdout, "headless-client: %s: removed %s\n", c.Interface, strings.Join(removed, "; "))
	}
	if err != nil {
		return err
	}
	sys := &dns.System{StateDir: c.StateDir, Log: env.log}
	undone, err := sys.Recover(c.Interface)
	if len(undone) > 0 {
		fmt.Fprintf(env.stdout, "headless-client: %s: DNS restored (%s)\n", c.Interface, strings.Join(undone, ", "))
	}
	if err != nil {
		return fmt.Errorf("headless-client: %s: DNS: %w", c.Interface, err)
	}
	if len(removed)+len(undone) == 0 {
		fmt.Fprintf(env.stdout, "headless-client: %s: nothing to clean up\n", c.Interface)
	}
	return nil
}

// served reports whether a client answers on iface's UAPI socket.
func served(iface string) bool {
	conn, err := net.DialTimeout("unix", uapi.SocketPath(iface), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// rulesFile is where a client records the interface's policy rules and
// unreachable routes, so that the next start, or cleanup, finds them.
func rulesFile(stateDir, iface string) string {
	return filepath.Join(stateDir, "rules."+iface+".json")
}
