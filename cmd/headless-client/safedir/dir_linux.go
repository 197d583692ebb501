package safedir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Open opens the directory at path after checking it, and every
// directory on the way, against the package's rule.
func Open(path string) (*Dir, error) { return walk(path, 0, false) }

// MkdirAll is Open, creating the missing directories first with perm.
func MkdirAll(path string, perm os.FileMode) (*Dir, error) { return walk(path, perm, false) }

// Check applies the rule to the directory at path, or, if it does not
// exist yet, to the directories that do on the way to it (where
// MkdirAll would create it). It creates nothing.
func Check(path string) error {
	d, err := walk(path, 0, true)
	if d != nil {
		d.Close()
	}
	return err
}

// Close closes the directory's descriptor.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// walk opens path one component at a time from the root, with no
// component a symbolic link unless the rule allows it, checking each
// directory as it goes. With perm it creates what is missing; with
// missingOK it stops, without error, at the first missing component.
func walk(path string, perm os.FileMode, missingOK bool) (*Dir, error) {
	euid := uint32(os.Geteuid())
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	todo := components(abs)
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	if err := checkFD(fd, cur, euid, len(todo) == 0); err != nil {
		unix.Close(fd)
		return nil, err
	}
	links, made := 0, 0
	for len(todo) > 0 {
		name := todo[0]
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT) && missingOK:
			unix.Close(fd)
			return nil, nil
		case errors.Is(err, unix.ENOENT) && perm != 0 && made < maxLinks:
			made++ // bounds a race with someone removing what it makes
			if err := unix.Mkdirat(fd, name, uint32(perm.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(cur, name), Err: err}
			}
			continue // and check what is there now
		case err != nil:
			unix.Close(fd)
			return nil, &os.PathError{Op: "stat", Path: filepath.Join(cur, name), Err: err}
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			next, err := follow(fd, cur, name, st.Uid, euid)
			unix.Close(fd)
			if err != nil {
				return nil, err
			}
			if links++; links > maxLinks {
				return nil, &os.PathError{Op: "open", Path: abs, Err: unix.ELOOP}
			}
			todo = components(filepath.Join(next, filepath.Join(todo[1:]...)))
			if fd, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return nil, &os.PathError{Op: "open", Path: "/", Err: err}
			}
			cur = "/"
			continue
		}
		// O_NOFOLLOW: had it become a link since the stat, this fails.
		nfd, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(cur, name), Err: err}
		}
		fd, cur, todo = nfd, filepath.Join(cur, name), todo[1:]
		if err := checkFD(fd, cur, euid, len(todo) == 0); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	return &Dir{fd: fd, path: cur, euid: euid}, nil
}

// components splits a clean absolute path into its names.
func components(abs string) []string {
	var out []string
	for _, c := range strings.Split(filepath.Clean(abs), "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// checkFD applies checkDir to an open directory.
func checkFD(fd int, path string, euid uint32, final bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return checkDir(path, st.Uid, st.Mode, euid, final)
}

// follow reads the link name in the directory dirfd (at path dir) and
// returns its target as an absolute path. In a directory others may
// write, only a link of the effective uid or root is followed.
func follow(dirfd int, dir, name string, linkUID, euid uint32) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&modeOtherWrite != 0 && linkUID != euid && linkUID != 0 {
		return "", fmt.Errorf("%w: symbolic link %s belongs to uid %d, in a directory anyone may write", ErrUntrusted, filepath.Join(dir, name), linkUID)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: filepath.Join(dir, name), Err: err}
	}
	target := string(buf[:n])
	if !filepath.IsAbs(target) {
		// dir has no links in it (each was resolved on the way), so
		// ".." in the target means its real parent.
		target = filepath.Join(dir, target)
	}
	return target, nil
}

// Sub opens the directory name in d, creating it with perm if it is
// missing and perm is not 0, and checks it as Open does.
func (d *Dir) Sub(name string, perm os.FileMode) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	path := filepath.Join(d.path, name)
	if perm != 0 {
		if err := unix.Mkdirat(d.fd, name, uint32(perm.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, &os.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if errors.Is(err, unix.ENOTDIR) && unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, fmt.Errorf("%w: %s is a symbolic link", ErrUntrusted, path)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := checkFD(fd, path, d.euid, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Dir{fd: fd, path: path, euid: d.euid}, nil
}

// OpenFile opens the file name in d with flag and perm as os.OpenFile
// does, never through a symbolic link, and only if it is a regular file
// of the effective uid or root.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	path := filepath.Join(d.path, name)
	// O_NONBLOCK: a FIFO would block the open; it is refused below.
	fd, err := openat(d.fd, name, flag|unix.O_NONBLOCK, uint32(perm.Perm()), true)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symbolic link (%w)", ErrUntrusted, path, err)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUntrusted, path)
	}
	if err := checkOwner(path, st.Uid, d.euid, "file"); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openat opens name in dirfd, never following a symbolic link: with
// openat2's RESOLVE_NO_SYMLINKS (and RESOLVE_BENEATH) if try2 and the
// kernel has it, else with O_NOFOLLOW, which for a single name is the
// same guarantee. A seccomp filter that does not know openat2 may
// answer EPERM or ENOSYS; both fall back.
func openat(dirfd int, name string, flag int, perm uint32, try2 bool) (int, error) {
	flag |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if flag&(unix.O_CREAT|unix.O_TMPFILE) == 0 {
		perm = 0 // openat2 refuses a mode it would not use
	}
	if try2 {
		how := unix.OpenHow{Flags: uint64(flag), Mode: uint64(perm),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		for try := 0; ; try++ {
			fd, err := unix.Openat2(dirfd, name, &how)
			if err == nil {
				return fd, nil
			}
			if (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && try < 3 {
				continue // a concurrent rename or a signal: try again
			}
			if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.E2BIG) && !errors.Is(err, unix.EAGAIN) {
				return -1, err
			}
			break
		}
	}
	for {
		fd, err := unix.Openat(dirfd, name, flag, perm)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// ReadFile reads the file name in d (see OpenFile), refusing one of
// more than limit bytes.
func (d *Dir) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := d.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("safedir: %s is larger than %d bytes", f.Name(), limit)
	}
	return b, nil
}

// WriteFile replaces the file name in d with data, whole or not at all:
// it writes a new file (mode perm, created exclusively in d under a
// random name), syncs it and renames it over name. A link planted at
// name is replaced, never followed.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode) error {
	if err := checkName(name); err != nil {
		return err
	}
	tmp := "." + name + ".tmp-" + rand.Text()
	f, err := d.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.Rename(tmp, name)
	}
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
	}
	return err
}

// Remove removes the file name from d (a link itself, never its
// target); a name already gone is not an error.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

// Rename renames from to to, both in d.
func (d *Dir) Rename(from, to string) error {
	if err := checkName(from); err != nil {
		return err
	}
	if err := checkName(to); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(d.path, from), New: filepath.Join(d.path, to), Err: err}
	}
	return nil
}

// Names lists the names in d, in no particular order.
func (d *Dir) Names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}
