package dns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/headless-client/config"
)

// etcResolvConf writes /etc/resolv.conf itself. Every tunnel on the host
// that uses this mode shares one state file (etcStateFile, under a
// lock): the system's original file, what was last written, and a claim
// per running tunnel. The file names the servers of every claim, the
// newest tunnel's first; when the last claim goes, the original comes
// back. So tunnels may start and stop in any order (start
// A, start B, stop A, stop B must not leave A's server behind), and a
// claim whose process died is dropped by the next start of any tunnel.
//
// A file that no longer holds what was written (DHCP or an admin changed
// it meanwhile) is left alone: it becomes the new original if a tunnel
// still writes, and is never overwritten with an older one.
type etcResolvConf struct{ sys *System }

// writtenHeader starts every file this mode writes (and the one earlier
// versions wrote), so the file is known as ours even if a crash came
// between writing it and noting that in the state.
const writtenHeader = "# Written by pipeguard-headless-client"

// etcStateFile is the shared state's name in the record directory; it
// has no '@', so it is never taken for a record.
const etcStateFile = "etc-resolv-conf.json"

// etcLockFile serialises the tunnels' changes to the shared state.
const etcLockFile = "etc-resolv-conf.lock"

// etcState is the shared state.
type etcState struct {
	Path     string      `json:"path"`     // the file written
	Original []byte      `json:"original"` // its content before any tunnel
	Existed  bool        `json:"existed"`  // whether it existed then
	Perm     fs.FileMode `json:"perm"`
	Written  []byte      `json:"written"` // what was last written
	Claims   []claim     `json:"claims"`  // oldest first
}

// claim is one running tunnel's servers.
type claim struct {
	Interface string       `json:"interface"`
	Servers   []netip.Addr `json:"servers"`
	Search    []string     `json:"search,omitempty"`
	PID       int          `json:"pid"`
	Start     uint64       `json:"start"` // the process's start time, to tell a reused pid
}

func (m *etcResolvConf) Name() string { return EtcResolvConf }

func (sys *System) resolvConfPath() string {
	if sys.ResolvConf != "" {
		return sys.ResolvConf
	}
	return "/etc/resolv.conf"
}

// Check refuses a resolv.conf that another program manages (a symlink,
// as systemd-resolved and resolvconf make it) and one it cannot write.
func (m *etcResolvConf) Check(Settings) error {
	path := m.sys.resolvConfPath()
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		return fmt.Errorf("%w: --dns-control %s: %s is a symlink to %s, so another program manages it; use --dns-control %s or %s",
			ErrPrereq, EtcResolvConf, path, target, SystemdResolved, Resolvconf)
	case err == nil:
		if err := writable(path); err != nil {
			return fmt.Errorf("%w: --dns-control %s: cannot write %s: %v", ErrPrereq, EtcResolvConf, path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if err := writable(filepath.Dir(path)); err != nil {
			return fmt.Errorf("%w: --dns-control %s: cannot create %s: %v", ErrPrereq, EtcResolvConf, path, err)
		}
	default:
		return fmt.Errorf("%w: --dns-control %s: %v", ErrPrereq, EtcResolvConf, err)
	}
	return nil
}

// writable reports whether this process may write path, by its
// effective ids and capabilities, without opening it.
func writable(path string) error {
	return unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS)
}

func (m *etcResolvConf) apply(s Settings, _ *record) error {
	return m.locked(func(st *etcState) error {
		hadState := st.Path != ""
		if !hadState {
			st.Path = m.sys.resolvConfPath()
		}
		st.drop(s.Interface)
		cur, existed, perm, err := readFile(st.Path)
		if err != nil {
			return err
		}
		if !hadState || !st.holdsOurs(cur, existed) {
			// No tunnel's file is there (or none we know the original
			// of): what is there is the original.
			st.Original, st.Existed, st.Perm = cur, existed, perm
		}
		start, err := procStart(os.Getpid())
		if err != nil {
			return err
		}
		st.Claims = append(st.Claims, claim{Interface: s.Interface, Servers: s.Servers, Search: s.Search, PID: os.Getpid(), Start: start})
		return st.write()
	})
}

func (m *etcResolvConf) undo(rec *record) error {
	return m.locked(func(st *etcState) error {
		if st.Path == "" {
			return nil // nothing was written, or it was all undone
		}
		st.drop(rec.Interface)
		cur, existed, _, err := readFile(st.Path)
		if err != nil {
			return err
		}
		if !st.holdsOurs(cur, existed) {
			m.sys.log().Warn("DNS: resolv.conf was changed by another program while the tunnel ran; left as it is", "file", st.Path, "interface", rec.Interface)
			if len(st.Claims) == 0 {
				*st = etcState{}
			}
			return nil
		}
		if len(st.Claims) > 0 {
			return st.write()
		}
		if st.Existed {
			err = writeInPlace(st.Path, st.Original, st.Perm)
		} else if err = os.Remove(st.Path); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("%w: restoring %s: %v", ErrDNS, st.Path, err)
		}
		*st = etcState{}
		return nil
	})
}

// locked runs fn on the shared state under an exclusive lock, then saves
// the state, or deletes it when fn left it empty. It drops the claims of
// processes that are gone before fn sees them, and refuses a state that
// names any file but this mode's own (see etcState.check).
func (m *etcResolvConf) locked(fn func(st *etcState) error) error {
	dir, err := m.sys.openRecordDir(true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDNS, err)
	}
	defer dir.Close()
	lock, err := dir.OpenFile(etcLockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDNS, err)
	}
	defer lock.Close() // which releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("%w: locking %s: %v", ErrDNS, lock.Name(), err)
	}
	var st etcState
	switch b, err := dir.ReadFile(etcStateFile, maxStateFile); {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%w: unreadable %s/%s: %v", ErrDNS, dir.Path(), etcStateFile, err)
		}
		if err := st.check(m.sys.resolvConfPath()); err != nil {
			return fmt.Errorf("%w: %s/%s refused, nothing restored (delete it if nothing needs restoring): %w", ErrDNS, dir.Path(), etcStateFile, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrDNS, err)
	}
	st.Claims = slices.DeleteFunc(st.Claims, func(c claim) bool {
		start, err := procStart(c.PID)
		if gone := err != nil || start != c.Start; gone {
			m.sys.log().Info("DNS: dropping the resolv.conf claim of a tunnel that is gone", "interface", c.Interface, "pid", c.PID)
			return true
		}
		return false
	})
	ferr := fn(&st)
	var serr error
	if st.Path == "" {
		serr = dir.Remove(etcStateFile)
	} else if b, err := json.Marshal(&st); err != nil {
		serr = err
	} else {
		serr = dir.WriteFile(etcStateFile, b, 0o600)
	}
	if serr != nil {
		serr = fmt.Errorf("%w: saving %s/%s: %v", ErrDNS, dir.Path(), etcStateFile, serr)
	}
	return errors.Join(ferr, serr)
}

// check accepts a state read back only if it names the one file this
// mode writes (path: /etc/resolv.conf, or the one configured), and
// tunnels by valid interface names: the state tells a root process what
// to write where, so it must not be able to name any other file.
func (st *etcState) check(path string) error {
	if st.Path != "" && st.Path != path {
		return fmt.Errorf("it names %q, not %s", st.Path, path)
	}
	if st.Perm&^0o777 != 0 {
		return fmt.Errorf("bad file mode %v", st.Perm)
	}
	for _, c := range st.Claims {
		if err := config.CheckInterfaceName(c.Interface); err != nil {
			return err
		}
	}
	return nil
}

// drop removes iface's claim.
func (st *etcState) drop(iface string) {
	st.Claims = slices.DeleteFunc(st.Claims, func(c claim) bool { return c.Interface == iface })
}

// holdsOurs reports whether the file's content is one this mode wrote.
func (st *etcState) holdsOurs(cur []byte, existed bool) bool {
	return existed && (st.Written != nil && bytes.Equal(cur, st.Written) || bytes.HasPrefix(cur, []byte(writtenHeader)))
}

// write renders the claims into the file, noting the content first (a
// crash between the two leaves a file that the header still marks ours).
func (st *etcState) write() error {
	st.Written = st.render()
	perm := st.Perm
	if perm == 0 {
		perm = 0o644
	}
	if err := writeInPlace(st.Path, st.Written, perm); err != nil {
		return fmt.Errorf("%w: writing %s: %v", ErrDNS, st.Path, err)
	}
	return nil
}

// render is the file for the claims: the newest tunnel's servers and
// search domains first, each once.
func (st *etcState) render() []byte {
	var ifaces, servers, search []string
	for _, c := range slices.Backward(st.Claims) {
		ifaces = append(ifaces, c.Interface)
		for _, s := range c.Servers {
			if a := s.String(); !slices.Contains(servers, a) {
				servers = append(servers, a)
			}
		}
		for _, d := range c.Search {
			if !slices.Contains(search, d) {
				search = append(search, d)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s for %s; the original comes back when the tunnel stops.\n", writtenHeader, strings.Join(ifaces, ", "))
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return []byte(b.String())
}

// readFile reads path; a missing file is (nil, false, 0644, nil). A link
// is not followed: it reads as a file that exists and holds nothing, so
// it is never taken for one this mode wrote.
func readFile(path string) (data []byte, existed bool, perm fs.FileMode, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, false, 0o644, nil
	case errors.Is(err, syscall.ELOOP):
		return nil, true, 0o644, nil
	case err != nil:
		return nil, false, 0, fmt.Errorf("%w: %v", ErrDNS, err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxStateFile))
	if err != nil {
		return nil, false, 0, fmt.Errorf("%w: %v", ErrDNS, err)
	}
	perm = 0o644
	if fi, err := f.Stat(); err == nil {
		perm = fi.Mode().Perm()
	}
	return data, true, perm, nil
}
