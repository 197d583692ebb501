package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// otherOwner reports the owner of the directory dir (not followed if it
// is a link) when that is not this process's effective user.
func otherOwner(dir string) (uid, gid int, ok bool) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return 0, 0, false
	}
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat || int(st.Uid) == os.Geteuid() {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// asOwner runs this program again with args, as the user uid and group
// gid, with no other groups and CAP_NET_ADMIN as its only capability
// (setpriv, util-linux, as the service's unit gives it), its output this
// one's; its failure is this one's. Root uses it to act on state that
// another user owns without reading what that user can change.
func asOwner(env *runEnv, uid, gid int, args ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("headless-client: finding this program: %w", err)
	}
	cmd := exec.Command("setpriv", append([]string{
		"--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--clear-groups",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin",
		"--", exe, "--log-level", env.logLevel}, args...)...)
	cmd.Stdout, cmd.Stderr = env.stdout, env.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("headless-client: as the state's owner (uid %d): %w", uid, err)
	}
	return nil
}
