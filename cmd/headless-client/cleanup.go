package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/dns"
	"pipeguard/cmd/headless-client/ifsetup"
)

// cleanupCmd restores normal routing after a full tunnel's client died
// with no restart to follow: it removes the policy rules and unreachable
// routes that its state file records (the fail-closed routing a crash
// leaves), and undoes its DNS settings, as the next start would. It
// refuses while the interface exists: a client serves it (its TUN device
// goes with the process). It does not ask the UAPI socket, which under
// the units belongs to systemd's socket unit and may outlive the client.
//
// The state directory is the one the client used: --state-dir, or the
// default of the user that runs cleanup. Root's default is its own
// (/var/lib/pipeguard-root), or, if that holds no record of the
// interface, the service's (/var/lib/pipeguard). Root never reads a
// directory another user can change (package safedir), so for one that
// belongs to another user (the service's) it runs cleanup again as that
// user, with CAP_NET_ADMIN alone (asOwner).
type cleanupCmd struct {
	Interface string `arg:"" help:"The tunnel's interface name."`
	StateDir  string `help:"The client's state directory, where it records its rules. Default: as the client's; as root, /var/lib/pipeguard-root, or /var/lib/pipeguard (the service's) if that one has no record of the interface." env:"PIPEGUARD_STATE_DIR"`
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
	if _, err := net.InterfaceByName(c.Interface); err == nil {
		return fmt.Errorf("headless-client: interface %s exists, so a client serves it: stop it (SIGTERM, systemctl stop), which restores normal routing",
			c.Interface)
	}
	dir := c.stateDir(os.Geteuid())
	if uid, gid, ok := otherOwner(dir); ok && os.Geteuid() == 0 {
		return asOwner(env, uid, gid, "cleanup", "--state-dir", dir, "--", c.Interface)
	}
	c.StateDir = dir
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

// stateDir is the directory to clean up for a process of euid.
func (c *cleanupCmd) stateDir(euid int) string {
	dir := stateDirFor(c.StateDir, euid)
	if c.StateDir != "" || euid != 0 {
		return dir
	}
	if _, err := os.Lstat(rulesFile(dir, c.Interface)); err == nil {
		return dir
	}
	return serviceStateDir
}

// rulesFile is where a client records the interface's policy rules and
// unreachable routes, so that the next start, or cleanup, finds them.
func rulesFile(stateDir, iface string) string {
	return filepath.Join(stateDir, "rules."+iface+".json")
}
