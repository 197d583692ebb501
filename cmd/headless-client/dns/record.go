package dns

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

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

	path string // where it is saved
}

// recordPath is <state>/dns/<iface>@<mode>.json: '@' appears in no
// interface name, so one interface's records never match another's.
func (sys *System) recordPath(iface, mode string) string {
	return filepath.Join(sys.recordDir(), iface+"@"+mode+".json")
}

// save writes the record whole or not at all (a new file renamed into
// place), so a crash never leaves half a record.
func (r *record) save() error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeAtomic(r.path, b)
}

// remove deletes the record; a record already gone is fine.
func (r *record) remove() error {
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrDNS, err)
	}
	return nil
}

// records reads iface's records, in any mode.
func (sys *System) records(iface string) ([]*record, error) {
	ents, err := os.ReadDir(sys.recordDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, e := range ents {
		mode, ok := strings.CutPrefix(e.Name(), iface+"@")
		if !ok || !strings.HasSuffix(mode, ".json") {
			continue
		}
		path := filepath.Join(sys.recordDir(), e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return out, err
		}
		r := &record{path: path}
		if err := json.Unmarshal(b, r); err != nil || r.Interface != iface {
			return out, fmt.Errorf("unreadable record %s (delete it if nothing of %s needs undoing): %v", path, iface, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// writeAtomic writes data to path (mode 0600) through a temporary file
// renamed into place, making the directory (0700) if needed.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// writeInPlace replaces path's content without replacing the file: a
// resolv.conf may be a bind mount (containers, ip netns exec), which a
// rename would break or fail on.
func writeInPlace(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
