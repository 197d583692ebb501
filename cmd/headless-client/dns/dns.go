// Package dns points the system's resolver at a tunnel's name servers
// while the tunnel runs, and takes that away again: at stop, and after a
// crash on the next start of the same interface.
//
// Each --dns-control mode is a Mode:
//
//   - disabled: leaves the system alone;
//   - etc-resolv-conf: writes /etc/resolv.conf itself, shared fairly
//     between tunnels (see etcresolvconf.go);
//   - resolvconf: the resolvconf(8) program, called exactly as wg-quick
//     calls it (openresolv or Debian's resolvconf);
//   - systemd-resolved: per-link servers and domains over resolved's
//     D-Bus API.
//
// "auto" picks systemd-resolved when it is on the system bus, disabled
// otherwise (Select).
//
// Crash recovery: before a mode changes anything it writes a record,
// <state>/dns/<interface>@<mode>.json, holding what its undo needs.
// Revert at stop and Recover at the next start run the same undo from
// that record, then delete it, so a run killed at any point is undone by
// the next start of its interface, whatever mode that start uses.
package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"

	"pipeguard/cmd/headless-client/safedir"
)

// The --dns-control values.
const (
	Auto            = "auto"
	Disabled        = "disabled"
	EtcResolvConf   = "etc-resolv-conf"
	Resolvconf      = "resolvconf"
	SystemdResolved = "systemd-resolved"
)

// Errors.
var (
	ErrDNS    = errors.New("dns: DNS setup failed")
	ErrPrereq = errors.New("dns: the DNS mode cannot work here")
	ErrMode   = errors.New("dns: unknown --dns-control mode")
)

// Settings are a tunnel's DNS, from its config's DNS lines.
type Settings struct {
	Interface string
	Servers   []netip.Addr
	Search    []string
	// DefaultRoute is set for a full tunnel (a /0 route): every name is
	// resolved through it, not only those of its search domains.
	DefaultRoute bool
}

// Empty reports settings with no servers: wg-quick applies nothing then,
// and neither does any mode here.
func (s Settings) Empty() bool { return len(s.Servers) == 0 }

// System says where the system's resolver configuration lives. The zero
// value of each field means the real system's; tests point them at
// temporary files, fakes and network namespaces. Methods are safe for
// concurrent use as far as the system's files allow: etc-resolv-conf
// locks its shared state, resolvconf(8) locks its own.
type System struct {
	// StateDir holds the records (in StateDir/dns); required.
	StateDir string
	// ResolvConf is the file etc-resolv-conf writes; /etc/resolv.conf.
	ResolvConf string
	// ResolvconfCmd runs resolvconf(8); ["resolvconf"], found in PATH.
	ResolvconfCmd []string
	// InterfaceOrder is Debian resolvconf's interface-order file, which
	// gives the name prefix ("tun."); /etc/resolvconf/interface-order.
	InterfaceOrder string
	// Bus connects to the system bus; dbus.ConnectSystemBus, which
	// honours DBUS_SYSTEM_BUS_ADDRESS.
	Bus BusDialer
	// Log gets warnings (a file changed behind our back, a leftover
	// undone); nil discards them.
	Log *slog.Logger
}

func (sys *System) log() *slog.Logger {
	if sys.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return sys.Log
}

// A Mode is one way of pointing the resolver at a tunnel. apply records
// in rec (already saved) what undo needs, before it changes anything
// else, and saves rec again if it learns more; undo takes away what
// apply did, from the record of this run or of a crashed one, and
// tolerates finding it already gone.
type Mode interface {
	// Name is the --dns-control value.
	Name() string
	// Check reports, changing nothing, why s cannot be applied here.
	Check(s Settings) error
	apply(s Settings, rec *record) error
	undo(rec *record) error
}

// modeNames lists the --dns-control values, auto first (the default), for
// messages.
var modeNames = []string{Auto, Disabled, EtcResolvConf, Resolvconf, SystemdResolved}

// Mode returns the mode called name (not auto: see Select).
func (sys *System) Mode(name string) (Mode, error) {
	switch name {
	case Disabled:
		return disabled{}, nil
	case EtcResolvConf:
		return &etcResolvConf{sys: sys}, nil
	case Resolvconf:
		return &resolvconf{sys: sys}, nil
	case SystemdResolved:
		return &resolved{sys: sys}, nil
	}
	return nil, fmt.Errorf("%w: %q (want one of %s)", ErrMode, name, strings.Join(modeNames, ", "))
}

// Select turns a --dns-control value into a mode, and says why, for the
// start-up log. auto is systemd-resolved when resolved owns its name on
// the system bus (how systemd's own tools find it; its directory
// /run/systemd/resolve outlives it), and disabled otherwise.
func (sys *System) Select(name string) (m Mode, why string, err error) {
	if name != Auto {
		m, err := sys.Mode(name)
		return m, "--dns-control " + name, err
	}
	r := &resolved{sys: sys}
	if err := r.running(); err != nil {
		return disabled{}, "auto: systemd-resolved is not running (" + err.Error() + ")", nil
	}
	return r, "auto: systemd-resolved is running (" + resolvedName + " is on the system bus)", nil
}

// disabled leaves the system's DNS alone.
type disabled struct{}

func (disabled) Name() string                  { return Disabled }
func (disabled) Check(Settings) error          { return nil }
func (disabled) apply(Settings, *record) error { return nil }
func (disabled) undo(*record) error            { return nil }

// Applied is a mode in effect for one tunnel. A nil *Applied is valid
// and reverts nothing. Not safe for concurrent use.
type Applied struct {
	mode Mode
	rec  *record // nil once reverted
}

// Apply points the resolver at s by mode m. Settings without servers
// apply nothing (nil, nil). On failure it undoes what it did.
func (sys *System) Apply(m Mode, s Settings) (*Applied, error) {
	if s.Empty() || m.Name() == Disabled {
		return nil, nil
	}
	if err := m.Check(s); err != nil {
		return nil, err
	}
	rec := &record{Mode: m.Name(), Interface: s.Interface, sys: sys, file: recordFile(s.Interface, m.Name())}
	if err := rec.save(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDNS, err)
	}
	if err := m.apply(s, rec); err != nil {
		if uerr := m.undo(rec); uerr != nil {
			sys.log().Warn("DNS: undoing a failed setup", "mode", m.Name(), "err", uerr)
		} else {
			rec.remove()
		}
		return nil, err
	}
	return &Applied{mode: m, rec: rec}, nil
}

// Revert undoes Apply and deletes its record; a second call does
// nothing. If the undo fails the record stays, so the next start of the
// interface tries again.
func (a *Applied) Revert() error {
	if a == nil || a.rec == nil {
		return nil
	}
	if err := a.mode.undo(a.rec); err != nil {
		return err
	}
	err := a.rec.remove()
	a.rec = nil
	return err
}

// Recover undoes whatever an earlier run of iface left behind (it
// crashed, or was killed, before its Revert), in every mode, and
// returns the modes it undid. It runs at every start of iface, whatever
// mode this start uses. A leftover whose undo fails keeps its record for
// the next start; the error names it.
func (sys *System) Recover(iface string) (undone []string, err error) {
	if legacy, lerr := sys.recoverLegacy(iface); lerr != nil {
		err = lerr
	} else if legacy {
		undone = append(undone, EtcResolvConf+" (backup of an earlier version)")
	}
	recs, rerr := sys.records(iface)
	if rerr != nil {
		return undone, errors.Join(err, fmt.Errorf("%w: %v", ErrDNS, rerr))
	}
	for _, rec := range recs {
		m, merr := sys.Mode(rec.Mode)
		if merr == nil {
			merr = m.undo(rec)
		}
		if merr != nil {
			err = errors.Join(err, fmt.Errorf("%w: undoing %s left by an earlier run of %s (record %s): %v", ErrDNS, rec.Mode, iface, rec.file, merr))
			continue
		}
		if rerr := rec.remove(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		undone = append(undone, rec.Mode)
	}
	slices.Sort(undone)
	return undone, err
}

// recoverLegacy handles the one backup an earlier version of PipeGuard
// kept, <state>/resolv.conf.<iface>: it goes back only if resolv.conf is
// still that version's file for iface, and is deleted either way.
func (sys *System) recoverLegacy(iface string) (bool, error) {
	backup := "resolv.conf." + iface
	state, err := safedir.Open(sys.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrDNS, err)
	}
	defer state.Close()
	old, err := state.ReadFile(backup, maxStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrDNS, err)
	}
	path := sys.resolvConfPath()
	cur, _, _, _ := readFile(path)
	if strings.HasPrefix(string(cur), "# Written by pipeguard-headless-client for "+iface+";") {
		if err := writeInPlace(path, old, 0o644); err != nil {
			return false, fmt.Errorf("%w: restoring %s from %s/%s: %v", ErrDNS, path, state.Path(), backup, err)
		}
	}
	return true, state.Remove(backup)
}

// Request is a mode and settings to apply on a System: what interface
// setup applies once the interface is up.
type Request struct {
	System   *System
	Mode     Mode
	Settings Settings
}

// Apply applies the request; see System.Apply.
func (r *Request) Apply() (*Applied, error) { return r.System.Apply(r.Mode, r.Settings) }
