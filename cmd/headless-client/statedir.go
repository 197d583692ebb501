package main

import (
	"errors"
	"fmt"
	"os"

	"pipeguard/cmd/headless-client/dns"

	"pipeguard/cmd/headless-client/safedir"
)

// The state directories. The service runs as the pipeguard user, and
// systemd's StateDirectory= makes /var/lib/pipeguard that user's. A root
// process must not trust what that user can change (it could plant a
// record that root "restores" over any file, or a link that root writes
// through), so a run as root keeps its state in a directory of its own,
// which only root can write.
const (
	serviceStateDir = "/var/lib/pipeguard"
	rootStateDir    = "/var/lib/pipeguard-root"
)

// stateDirHelp is the --state-dir flag's help.
const stateDirHelp = "State directory: the device id (<dir>/config/pipeguard-id) and what a crashed run left to undo (DNS, policy rules). " +
	"Default: " + serviceStateDir + ", or " + rootStateDir + " when run as root. It, and its config and dns directories, must belong to the user running the client (or root) and be writable by no one else."

// stateDirFor is the state directory a process of euid uses when the
// command line and the environment name none.
func stateDirFor(flag string, euid int) string {
	switch {
	case flag != "":
		return flag
	case euid == 0:
		return rootStateDir
	}
	return serviceStateDir
}

// checkStateDir refuses a state directory (or one of its
// subdirectories, or, if they are missing, the directories that would
// hold them) that another user could change, with one line that says
// which and why. It creates nothing: a refused start leaves nothing
// behind. Subdirectories are checked as they are opened, without
// following a link.
func checkStateDir(dir string) error {
	refuse := func(err error) error {
		return fmt.Errorf("headless-client: state directory %s: %w (another user could plant what a root process would act on; use --state-dir with a directory of your own)", dir, err)
	}
	if err := safedir.Check(dir); err != nil {
		return refuse(err)
	}
	d, err := safedir.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // made at start, under directories just checked
	}
	if err != nil {
		return refuse(err)
	}
	defer d.Close()
	// The device id's directory and the DNS records'.
	for _, name := range []string{deviceIDDir, dns.RecordDir} {
		sub, err := d.Sub(name, 0)
		switch {
		case err == nil:
			sub.Close()
		case !errors.Is(err, os.ErrNotExist):
			return refuse(err)
		}
	}
	return nil
}
