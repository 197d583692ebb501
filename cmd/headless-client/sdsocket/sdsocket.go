// Package sdsocket takes the sockets a service manager passes the
// process it starts (socket activation, sd_listen_fds(3)): $LISTEN_PID
// names the process the sockets are for, $LISTEN_FDS counts them, from
// descriptor 3 on, and $LISTEN_FDNAMES may name them. systemd does this
// for a service with a .socket unit of the same name.
//
// PipeGuard's units use it so that the UAPI socket, which wg(8) finds in
// /run/wireguard, is made by root in root's directory (the .socket unit)
// while the tunnel runs as an unprivileged user who cannot write there:
// that user then cannot put a socket of its own in the place of another
// interface's. A few lines, as sdnotify is, rather than go-systemd's
// activation package.
package sdsocket

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// firstFD is the first descriptor passed: 0 to 2 are stdio.
const firstFD = 3

// maxFDs bounds the count read from the environment; systemd passes as
// many as a unit has sockets, and PipeGuard's have one.
const maxFDs = 64

// ErrEnv reports variables that cannot be what a service manager sets.
var ErrEnv = errors.New("sdsocket: bad LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES")

// File is one passed descriptor with its name (LISTEN_FDNAMES, or
// "unknown" as sd_listen_fds_with_names(3) says when none is given).
type File struct {
	*os.File
	Name string
}

// Take returns the sockets passed to this process, as close-on-exec
// files, and unsets the variables, so that no process this one starts
// takes them for its own. Without the variables, or with a LISTEN_PID of
// another process (they were inherited, not passed), it returns none.
// Call it once.
func Take() ([]File, error) {
	n, names, err := parse(os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"), os.Getpid())
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if err != nil || n == 0 {
		return nil, err
	}
	files := make([]File, n)
	for i := range n {
		fd := firstFD + i
		unix.CloseOnExec(fd)
		files[i] = File{File: os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd)), Name: names[i]}
	}
	return files, nil
}

// parse reads the variables for process pid: the count of descriptors
// meant for it (0 if they are not) and their names.
func parse(pidVar, fdsVar, namesVar string, pid int) (int, []string, error) {
	if pidVar == "" && fdsVar == "" {
		return 0, nil, nil
	}
	p, err := strconv.Atoi(pidVar)
	if err != nil || p <= 0 {
		return 0, nil, fmt.Errorf("%w: LISTEN_PID=%q", ErrEnv, pidVar)
	}
	if p != pid {
		return 0, nil, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 || n > maxFDs {
		return 0, nil, fmt.Errorf("%w: LISTEN_FDS=%q (want 0 to %d)", ErrEnv, fdsVar, maxFDs)
	}
	names := make([]string, n)
	if namesVar != "" {
		given := strings.Split(namesVar, ":")
		if len(given) != n {
			return 0, nil, fmt.Errorf("%w: LISTEN_FDNAMES has %d names for %d descriptors", ErrEnv, len(given), n)
		}
		copy(names, given)
	}
	for i := range names {
		if names[i] == "" {
			names[i] = "unknown"
		}
	}
	return n, names, nil
}
