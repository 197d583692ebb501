package ifsetup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"pipeguard/cmd/headless-client/safedir"
	"pipeguard/tunio"
)

// The state file records what the client adds that outlives the
// interface (a full tunnel's policy rules and unreachable routes), as it
// adds each, so that the next start of the same interface takes over or
// removes what a killed run left, and Cleanup finds it. It
// tells a root process what to delete, so it is read and written only in
// a trusted directory (package safedir: the euid's or root's, writable by
// no one else), never through a link, replaced whole through an exclusive
// temporary file, and what it says is checked before anything is acted
// on: only the interface's own entries, of the kinds this package adds.
// A new kind of entry gets its field here and its check in check.

// maxStateFile bounds what is read back: a handful of entries.
const maxStateFile = 64 << 10

// maxStateRules is the most rules a file lists: a run adds two per
// address family, and while a start takes over from a crashed run whose
// table was another, the file lists both runs'.
const maxStateRules = 8

// maxStateRoutes is the most unreachable routes a file lists: one per
// family and run, as for rules.
const maxStateRoutes = 4

// state is the state file's content: what this run added that outlives
// the interface, and while a start takes over from a crashed run, what
// that run left and this one has not dealt with yet.
type state struct {
	Interface string       `json:"interface"`
	Rules     []tunio.Rule `json:"rules"`
	Routes    []failRoute  `json:"routes,omitempty"`
}

// openStateDir opens the directory of the state file path, creating it
// (mode 0700) if create.
func openStateDir(path string, create bool) (*safedir.Dir, error) {
	if create {
		return safedir.MkdirAll(filepath.Dir(path), 0o700)
	}
	return safedir.Open(filepath.Dir(path))
}

// saveState writes st to path, whole or not at all.
func saveState(path string, st state) error {
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return err
	}
	d, err := openStateDir(path, true)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteFile(filepath.Base(path), append(b, '\n'), 0o600)
}

// loadState reads path and checks it is iface's; a missing file (or
// directory) is os.ErrNotExist.
func loadState(path, iface string) (state, error) {
	d, err := openStateDir(path, false)
	if err != nil {
		return state{}, err
	}
	defer d.Close()
	b, err := d.ReadFile(filepath.Base(path), maxStateFile)
	if err != nil {
		return state{}, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, err
	}
	return st, st.check(iface)
}

// removeState deletes path; a file already gone is fine.
func removeState(path string) error {
	d, err := openStateDir(path, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Remove(filepath.Base(path))
}

// check accepts a state only if it is iface's and lists only what this
// package adds: policy rules, each one of the two a full tunnel adds
// (addPolicyLocked), and unreachable routes in a table of a tunnel's own
// (addFailRoutesLocked), no more of either than two runs add.
func (st state) check(iface string) error {
	if st.Interface != iface {
		return fmt.Errorf("it is interface %q's, not %s's", st.Interface, iface)
	}
	if len(st.Rules) > maxStateRules {
		return fmt.Errorf("%d rules; a file lists at most %d", len(st.Rules), maxStateRules)
	}
	for _, ru := range st.Rules {
		if !isPolicyRule(ru) {
			return fmt.Errorf("%s is no rule a full tunnel adds", ru)
		}
	}
	if len(st.Routes) > maxStateRoutes {
		return fmt.Errorf("%d routes; a file lists at most %d", len(st.Routes), maxStateRoutes)
	}
	for _, r := range st.Routes {
		if r.Table <= 0 || kernelTable(r.Table) {
			return fmt.Errorf("%s is in no table of a tunnel's own", r)
		}
	}
	return nil
}

// isPolicyRule reports whether ru is one of the rules a full tunnel
// adds: "not fwmark T table T" (T its own table, never one of the
// kernel's: main, local, default) or "table main suppress_prefixlength
// 0", with no priority given.
func isPolicyRule(ru tunio.Rule) bool {
	switch {
	case ru.Priority != 0:
		return false
	case ru.SuppressDefault:
		return ru.Table == tunio.MainTable && ru.Mark == 0 && !ru.Invert
	default:
		return ru.Invert && ru.Table > 0 && uint32(ru.Table) == ru.Mark && !kernelTable(ru.Table)
	}
}

// kernelTable reports the tables the kernel keeps: default, main and
// local.
func kernelTable(t int) bool { return t == 253 || t == tunio.MainTable || t == 255 }
