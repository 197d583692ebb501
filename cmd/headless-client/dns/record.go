package dns

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/safedir"
)

// RecordDir is the directory under the state directory that holds the
// records and etc-resolv-conf's shared state.
const RecordDir = "dns"

// maxStateFile bounds what is read of a record or the shared state: a
// few hundred bytes each, and the original resolv.conf.
const maxStateFile = 1 << 20

// record is what one tunnel's mode must undo, kept on disk while it is in
// effect so that a crashed run is undone by the next start.
type record struct {
	Mode      string `json:"mode"`
	Interface string `json:"interface"`
	// Name is the interface name given to resolvconf(8) (with Debian's
	// prefix, such as "tun.pg0").
	Name string `json:"name,omitempty"`
	// Ifindex is the link systemd-resolved was told about.
	Ifindex int `json:"ifindex,omitempty"`

	sys  *System
	file string // its name in the record directory
}

// recordFile is <iface>@<mode>.json: '@' appears in no interface name,
// so one interface's records never match another's.
func recordFile(iface, mode string) string { return iface + "@" + mode + ".json" }

// openRecordDir opens the record directory, creating it (and the state
// directory) if create. Both must be trusted (package safedir): a record
// tells a root process what to delete or restore.
func (sys *System) openRecordDir(create bool) (*safedir.Dir, error) {
	var perm os.FileMode
	open := safedir.Open
	if create {
		perm = 0o700
		open = func(p string) (*safedir.Dir, error) { return safedir.MkdirAll(p, perm) }
	}
	state, err := open(sys.StateDir)
	if err != nil {
		return nil, err
	}
	defer state.Close()
	return state.Sub(RecordDir, perm)
}

// save writes the record whole or not at all (a new file renamed into
// place), so a crash never leaves half a record.
func (r *record) save() error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	d, err := r.sys.openRecordDir(true)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteFile(r.file, b, 0o600)
}

// remove deletes the record; a record already gone is fine.
func (r *record) remove() error {
	d, err := r.sys.openRecordDir(false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		defer d.Close()
		err = d.Remove(r.file)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDNS, err)
	}
	return nil
}

// records reads iface's records, in any mode, and checks each before any
// is acted on.
func (sys *System) records(iface string) ([]*record, error) {
	d, err := sys.openRecordDir(false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Names()
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, name := range names {
		mode, ok := strings.CutPrefix(name, iface+"@")
		if !ok || !strings.HasSuffix(mode, ".json") {
			continue
		}
		b, err := d.ReadFile(name, maxStateFile)
		if err != nil {
			return out, err
		}
		r := &record{sys: sys, file: name}
		err = json.Unmarshal(b, r)
		if err == nil {
			err = r.check(iface, strings.TrimSuffix(mode, ".json"))
		}
		if err != nil {
			return out, fmt.Errorf("record %s/%s refused (delete it if nothing of %s needs undoing): %w", d.Path(), name, iface, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// resolvconfPrefixName is a prefix resolvconfPrefix can give: a name of
// letters, digits and '-' (not first: never an option), and a dot.
var resolvconfPrefixName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*\.$`)

// check accepts a record read back only if it is iface's own in the mode
// its file is named for, and says nothing its undo could turn against
// something else: a resolvconf name is the interface's own (as
// resolvconfPrefix makes it), never a path.
func (r *record) check(iface, mode string) error {
	if err := config.CheckInterfaceName(iface); err != nil {
		return err
	}
	if r.Interface != iface || r.Mode != mode {
		return fmt.Errorf("it is for %q in mode %q", r.Interface, r.Mode)
	}
	if r.Name != "" {
		prefix, ok := strings.CutSuffix(r.Name, iface)
		if !ok || r.Mode != Resolvconf || prefix != "" && !resolvconfPrefixName.MatchString(prefix) {
			return fmt.Errorf("resolvconf name %q is not interface %s's", r.Name, iface)
		}
	}
	if r.Ifindex < 0 || r.Ifindex != 0 && r.Mode != SystemdResolved {
		return fmt.Errorf("bad link index %d", r.Ifindex)
	}
	return nil
}

// writeInPlace replaces path's content without replacing the file: a
// resolv.conf may be a bind mount (containers, ip netns exec), which a
// rename would break or fail on. It never writes through a link: this
// mode only ever wrote a file, and a link there is another program's.
func writeInPlace(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, perm.Perm()&0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
