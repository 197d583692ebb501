package ifsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"pipeguard/cmd/headless-client/safedir"
	"pipeguard/tunio"
)

// A full tunnel, as wg-quick's add_default sets it up for each family whose
// default route (0.0.0.0/0, ::/0) is among AllowedIPs with Table auto:
//
//	ip route add 0.0.0.0/0 dev IFACE table T
//	ip rule add not fwmark T table T
//	ip rule add table main suppress_prefixlength 0
//	sysctl net.ipv4.conf.all.src_valid_mark=1   (IPv4 only)
//
// and the tunnel's sockets carry fwmark T. Packets the tunnel sends itself
// carry the mark, skip table T and go out by the main table as before;
// everything else finds the default route in table T, unless the main
// table has a more specific route (the suppress rule ignores only main's
// default routes), so the local network stays reachable. T is the config's
// FwMark if set, else the first table from 51820 that neither routes nor
// rules use.
//
// The rules outlive the interface, so each one added is written to the
// state file at once, and the next start of the same interface removes
// what a killed run left. A file rather than recognising rules by table
// or shape: identical rules are common (every wg-quick and PipeGuard full
// tunnel adds the same suppress rule), and only a record of how many we
// added lets us remove exactly ours and leave the others' copies alone.
// The src_valid_mark sysctl is left set, as wg-quick leaves it: another
// tunnel's policy routing may need it, and it changes nothing for packets
// without a mark.

// firstAutoTable is where wg-quick starts looking for a free table.
const firstAutoTable = 51820

// srcValidMark is the sysctl a full tunnel needs for IPv4.
const srcValidMark = "/proc/sys/net/ipv4/conf/all/src_valid_mark"

// makePlan decides where routes go and which fwmark the sockets carry.
func (i *Interface) makePlan(table int64, fwmark uint32, routes []netip.Prefix) (plan, error) {
	p := plan{mode: table, fwmark: fwmark}
	if table != TableAuto {
		return p, nil
	}
	p.full = defaults(normalize(routes))
	if !p.full[0] && !p.full[1] {
		return p, nil
	}
	if fwmark != 0 {
		p.policyTable = int(fwmark)
		return p, nil
	}
	t, err := i.freeTable()
	if err != nil {
		return p, err
	}
	p.policyTable, p.fwmark = t, uint32(t)
	return p, nil
}

// freeTable finds the first table from firstAutoTable that no route and
// no rule uses (wg-quick looks at routes only; a table that only rules
// point at belongs to a tunnel whose interface is down).
func (i *Interface) freeTable() (int, error) {
	used := map[int]bool{}
	for _, v6 := range []bool{false, true} {
		rules, err := i.rt.Rules(v6)
		if err != nil {
			return 0, fmt.Errorf("%w: reading rules: %v", ErrSetup, err)
		}
		for _, r := range rules {
			used[r.Table] = true
		}
	}
	routes, err := i.rt.Routes(0)
	if err != nil {
		return 0, fmt.Errorf("%w: reading routes: %v", ErrSetup, err)
	}
	for _, r := range routes {
		used[r.Table] = true
	}
	t := firstAutoTable
	for used[t] {
		t++
	}
	return t, nil
}

// addPolicyLocked adds the rules of the full tunnel's families (their
// default routes are in place already) and sets src_valid_mark for IPv4.
func (i *Interface) addPolicyLocked() error {
	for f, on := range i.plan.full {
		if !on {
			continue
		}
		v6 := f == 1
		t := i.plan.policyTable
		for _, ru := range []tunio.Rule{
			{V6: v6, Table: t, Mark: i.plan.fwmark, Invert: true},
			{V6: v6, Table: tunio.MainTable, SuppressDefault: true},
		} {
			if err := i.rt.AddRule(ru); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrSetup, ru, err)
			}
			i.rules = append(i.rules, ru)
			if err := i.saveStateLocked(); err != nil {
				return err
			}
		}
		if !v6 {
			i.setSrcValidMark()
		}
	}
	return nil
}

// setSrcValidMark sets net.ipv4.conf.all.src_valid_mark=1, as wg-quick
// does. It only matters where reverse-path filtering is strict and the
// tunnel's incoming packets carry the mark (wg-quick's connmark rules,
// which PipeGuard does not add), so a failure is a warning: under
// systemd's ProtectKernelTunables, /proc/sys is read-only.
func (i *Interface) setSrcValidMark() {
	if b, err := os.ReadFile(srcValidMark); err == nil && strings.TrimSpace(string(b)) == "1" {
		return
	}
	if err := os.WriteFile(srcValidMark, []byte("1\n"), 0o644); err != nil {
		i.log.Warn("could not set sysctl net.ipv4.conf.all.src_valid_mark=1, as wg-quick does; the full tunnel works without it unless reverse-path filtering is strict",
			"err", err)
	}
}

// removeRulesLocked removes the rules we added, and the state file.
func (i *Interface) removeRulesLocked() error {
	var first error
	for _, ru := range i.rules {
		if err := i.rt.DelRule(ru); err != nil && !gone(err) && first == nil {
			first = fmt.Errorf("%w: removing %s: %v", ErrSetup, ru, err)
		}
	}
	i.rules = nil
	if first == nil && i.stateFile != "" {
		if err := removeState(i.stateFile); err != nil {
			first = fmt.Errorf("%w: state file: %w", ErrSetup, err)
		}
	}
	return first
}

// saveStateLocked writes the rules added so far, replacing the file
// whole, so a crash leaves the old record or the new one.
func (i *Interface) saveStateLocked() error {
	if i.stateFile == "" {
		return nil
	}
	if err := saveState(i.stateFile, state{Interface: i.name, Rules: i.rules}); err != nil {
		return fmt.Errorf("%w: state file: %w", ErrSetup, err)
	}
	return nil
}

// removeStaleRulesLocked removes the rules a previous run of this
// interface recorded and did not remove (it was killed), and its state
// file. A state file that is not this interface's, or lists anything but
// the rules a full tunnel adds, is refused whole: nothing it lists is
// removed. Failures are logged: they must not keep the tunnel down.
func (i *Interface) removeStaleRulesLocked() {
	if i.stateFile == "" {
		return
	}
	st, err := loadState(i.stateFile, i.name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return
	case errors.Is(err, safedir.ErrUntrusted):
		// Not ours to read, nor to delete.
		i.log.Warn("state file of a previous run refused: its directory or the file is not trusted; its policy rules, if any, stay", "file", i.stateFile, "err", err)
		return
	case err != nil:
		i.log.Warn("state file of a previous run refused; its policy rules, if any, stay", "file", i.stateFile, "err", err)
		removeState(i.stateFile)
		return
	}
	var removed []string
	for _, ru := range st.Rules {
		err := i.rt.DelRule(ru)
		switch {
		case err == nil:
			removed = append(removed, ru.String())
		case !gone(err):
			i.log.Warn("removing a policy rule left by a previous run", "rule", ru.String(), "err", err)
		}
	}
	removeState(i.stateFile)
	if len(removed) > 0 {
		i.log.Warn("removed the policy rules a previous run left (it did not stop cleanly)", "name", i.name, "rules", removed)
	}
}

// PolicyRules returns the policy rules this package added, as `ip rule`
// would show them.
func (i *Interface) PolicyRules() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]string, 0, len(i.rules))
	for _, ru := range i.rules {
		out = append(out, ru.String())
	}
	return slices.Clip(out)
}
