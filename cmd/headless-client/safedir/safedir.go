// Package safedir opens directories that only this process's user (and
// root) can change, and the files in them without following symbolic
// links. PipeGuard's service runs as an unprivileged user who owns its
// own state; a process running as root must never read, follow or write
// anything that user (or any other) can change, or the user becomes a
// path to root: a planted symlink turns a write into an overwrite of any
// file, a planted record into a deletion or a restore of any file.
//
// The rule, checked on every open:
//
//   - the directory itself belongs to the effective uid or to root, and
//     neither its group nor others may write it;
//   - every directory on the way to it belongs to the effective uid or to
//     root, and is writable by others only if it is sticky (/tmp), where
//     no one can remove or rename another's entries; group-writable
//     directories on the way are accepted (Ubuntu's /var/log is
//     root:syslog 0775);
//   - a symbolic link on the way is followed (the directories holding it
//     passed the rule, so its owner could have moved the target anyway),
//     but in a directory others may write only if it belongs to the
//     effective uid or root, as the kernel's protected_symlinks does;
//   - a file is opened relative to the directory's descriptor, never
//     through a link (openat2 with RESOLVE_NO_SYMLINKS where the kernel
//     has it, O_NOFOLLOW otherwise), must be a regular file, and must
//     belong to the effective uid or root;
//   - a file is replaced through a new file, created exclusively in the
//     same directory and renamed over the old one.
//
// Only Linux is supported; elsewhere every function returns
// ErrUnsupported.
package safedir

import (
	"errors"
	"fmt"
	"strings"
)

// Errors. ErrUntrusted is wrapped with the path and the reason.
var (
	ErrUntrusted   = errors.New("safedir: not trusted")
	ErrBadName     = errors.New("safedir: not a file name")
	ErrUnsupported = errors.New("safedir: not supported on this system")
)

// maxLinks bounds the symbolic links followed on the way to a
// directory, as the kernel's 40.
const maxLinks = 40

// checkName accepts a single path component: files are opened by name
// relative to their directory, never by a path that could lead
// elsewhere.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// Owner and mode bits the checks need, as in stat(2).
const (
	modeGroupWrite = 0o020
	modeOtherWrite = 0o002
	modeSticky     = 0o1000
)

// checkOwner is the rule for every directory and file: the effective
// uid's or root's.
func checkOwner(path string, uid, euid uint32, what string) error {
	switch {
	case uid == euid || uid == 0:
	case euid == 0:
		return fmt.Errorf("%w: %s %s belongs to uid %d, not to root", ErrUntrusted, what, path, uid)
	default:
		return fmt.Errorf("%w: %s %s belongs to uid %d, not to this process's uid %d or root", ErrUntrusted, what, path, uid, euid)
	}
	return nil
}

// checkDir applies the rule to a directory: the one asked for (final) or
// one on the way to it.
func checkDir(path string, uid, mode, euid uint32, final bool) error {
	what := "directory"
	if !final {
		what = "directory on the way,"
	}
	if err := checkOwner(path, uid, euid, what); err != nil {
		return err
	}
	switch {
	case final && mode&(modeGroupWrite|modeOtherWrite) != 0:
		return fmt.Errorf("%w: directory %s is writable by its group or others (mode %04o): chmod go-w %s", ErrUntrusted, path, mode&0o7777, path)
	case !final && mode&modeOtherWrite != 0 && mode&modeSticky == 0:
		return fmt.Errorf("%w: directory on the way, %s, is writable by anyone and not sticky (mode %04o)", ErrUntrusted, path, mode&0o7777)
	}
	return nil
}

// Dir is an open, trusted directory. Its files are reached through its
// descriptor, so a rename of the directory or of one on the way after
// Open changes nothing. Make one with Open, MkdirAll or Sub; the zero
// value is not usable. Its methods are safe for concurrent use; Close
// must come after the last of them.
type Dir struct {
	fd   int    // an O_PATH descriptor of the directory
	path string // the directory's path, symbolic links resolved
	euid uint32 // the effective uid it was checked against
}

// Path is the directory's path, with symbolic links resolved: for
// messages and for programs that take a path.
func (d *Dir) Path() string { return d.path }
