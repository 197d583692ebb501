package ifsetup

import (
	"errors"
	"fmt"
	"os"

	"pipeguard/tunio"
)

// Cleanup removes what a run of the interface iface recorded in the state
// file stateFile and left behind: the policy rules and unreachable routes
// of a full tunnel that was killed, or that stopped failed closed. It
// restores normal routing after a crash with no restart to follow. It
// returns what it removed (nothing, and no error, if there is no state
// file); it does not look whether a client still runs the interface (the
// caller does: the rules are that client's routing).
func Cleanup(stateFile, iface string) ([]string, error) {
	if stateFile == "" {
		return nil, nil
	}
	st, err := loadState(stateFile, iface)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: state file %s: %v", ErrSetup, stateFile, err)
	}
	rt, err := tunio.OpenRTNL()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	defer rt.Close()
	var removed []string
	var first error
	for _, ru := range st.Rules {
		switch err := rt.DelRule(ru); {
		case err == nil:
			removed = append(removed, ru.String())
		case !gone(err) && first == nil:
			first = fmt.Errorf("%w: removing %s: %v", ErrSetup, ru, err)
		}
	}
	for _, r := range st.Routes {
		switch err := rt.DelUnreachable(r.prefix(), r.Table, failClosedMetric); {
		case err == nil:
			removed = append(removed, r.String())
		case !gone(err) && first == nil:
			first = fmt.Errorf("%w: removing %s: %v", ErrSetup, r, err)
		}
	}
	if first != nil {
		return removed, first
	}
	if err := removeState(stateFile); err != nil {
		return removed, fmt.Errorf("%w: state file: %w", ErrSetup, err)
	}
	return removed, nil
}

// StaleMark is the fwmark of the "not fwmark" rule a previous run of
// iface recorded in stateFile, or 0. While those rules stay (the run
// crashed, and the routing is failed closed), only packets with that
// mark get past the unreachable routes: a start marks its own lookups of
// endpoint names with it, so that they can leave, as the tunnel's
// packets will.
func StaleMark(stateFile, iface string) uint32 {
	if stateFile == "" {
		return 0
	}
	st, err := loadState(stateFile, iface)
	if err != nil {
		return 0
	}
	for _, ru := range st.Rules {
		if ru.Invert && ru.Mark != 0 {
			return ru.Mark
		}
	}
	return 0
}
