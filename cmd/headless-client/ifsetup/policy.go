package ifsetup

import (
	"errors"
	"fmt"
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
// state file at once, and the next start of the same interface takes
// over or removes what a killed run left (so do the unreachable routes
// of failclosed.go). A file rather than recognising rules by table
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

// makePlan decides where routes go, which fwmark the sockets carry, and
// which families fail closed or are blocked. The table is the config's
// FwMark if it sets one, else the table a crashed run of this interface
// left its rules in (so that a restart takes them over), else the first
// free one from firstAutoTable.
func (i *Interface) makePlan(cfg Config) (plan, error) {
	p := plan{mode: cfg.Table, fwmark: cfg.FwMark, failClosed: !cfg.FailOpen}
	if cfg.Table != TableAuto {
		return p, nil
	}
	p.full = defaults(normalize(cfg.Routes))
	if cfg.BlockUntunneled && p.full[0] != p.full[1] {
		p.blocked = [2]bool{!p.full[0], !p.full[1]}
	}
	if !p.policy(0) && !p.policy(1) {
		return p, nil
	}
	if cfg.FwMark != 0 {
		p.policyTable = int(cfg.FwMark)
		return p, nil
	}
	t, err := i.staleTableLocked()
	if err == nil && t == 0 {
		t, err = i.freeTable()
	}
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

// addPolicyLocked adds the rules of the families routed by policy (a
// full tunnel's, and a blocked one's), each recorded as soon as it is
// added, and sets src_valid_mark for IPv4. A rule the crashed run
// recorded (stale) that is still there is taken over as it is.
func (i *Interface) addPolicyLocked() error {
	for f := range 2 {
		if !i.plan.policy(f) {
			continue
		}
		v6 := f == 1
		t := i.plan.policyTable
		for _, ru := range []tunio.Rule{
			{V6: v6, Table: t, Mark: i.plan.fwmark, Invert: true},
			{V6: v6, Table: tunio.MainTable, SuppressDefault: true},
		} {
			taken, err := i.takeStaleRuleLocked(ru)
			if err != nil {
				return err
			}
			if !taken {
				if err := i.rt.AddRule(ru); err != nil {
					return fmt.Errorf("%w: %s: %v", ErrSetup, ru, err)
				}
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

// takeStaleRuleLocked takes over ru from what the crashed run recorded,
// if it recorded it and the kernel still has it.
func (i *Interface) takeStaleRuleLocked(ru tunio.Rule) (bool, error) {
	k := slices.Index(i.stale.Rules, ru)
	if k < 0 {
		return false, nil
	}
	have, err := i.rt.Rules(ru.V6)
	if err != nil {
		return false, fmt.Errorf("%w: reading rules: %v", ErrSetup, err)
	}
	i.stale.Rules = slices.Delete(i.stale.Rules, k, k+1)
	there := slices.ContainsFunc(have, func(h tunio.Rule) bool { h.Priority = 0; return h == ru })
	if there {
		i.adopted = append(i.adopted, ru.String())
	}
	return there, nil
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

// removePolicyLocked removes the rules and unreachable routes we added,
// and the state file.
func (i *Interface) removePolicyLocked() error {
	var first error
	for _, ru := range i.rules {
		if err := i.rt.DelRule(ru); err != nil && !gone(err) && first == nil {
			first = fmt.Errorf("%w: removing %s: %v", ErrSetup, ru, err)
		}
	}
	i.rules = nil
	if err := i.removeFailRoutesLocked(); err != nil && first == nil {
		first = err
	}
	if first == nil && i.stateFile != "" {
		if err := removeState(i.stateFile); err != nil {
			first = fmt.Errorf("%w: state file: %w", ErrSetup, err)
		}
	}
	return first
}

// saveStateLocked writes the rules and routes added so far, and the
// crashed run's that are left, replacing the file whole, so a crash
// leaves the old record or the new one.
func (i *Interface) saveStateLocked() error {
	if i.stateFile == "" {
		return nil
	}
	st := state{Interface: i.name, Rules: append(slices.Clip(i.rules), i.stale.Rules...), Routes: append(slices.Clip(i.failRoutes), i.stale.Routes...)}
	if err := saveState(i.stateFile, st); err != nil {
		return fmt.Errorf("%w: state file: %w", ErrSetup, err)
	}
	return nil
}

// loadStaleLocked reads what a previous run of this interface recorded
// and did not remove (it was killed, or stopped failed closed) into
// i.stale. A state file that is not this interface's, or lists anything
// but what a full tunnel adds, is refused whole: nothing it lists is
// touched. Failures are logged: they must not keep the tunnel down.
func (i *Interface) loadStaleLocked() {
	if i.stateFile == "" {
		return
	}
	st, err := loadState(i.stateFile, i.name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return
	case errors.Is(err, safedir.ErrUntrusted):
		// Not ours to read, nor to delete.
		i.log.Warn("state file of a previous run refused: its directory or the file is not trusted; its policy rules and routes, if any, stay", "file", i.stateFile, "err", err)
		return
	case err != nil:
		i.log.Warn("state file of a previous run refused; its policy rules and routes, if any, stay", "file", i.stateFile, "err", err)
		removeState(i.stateFile)
		return
	}
	i.stale = st
	i.inherited = len(st.Rules)+len(st.Routes) > 0
}

// staleTableLocked is the table of the crashed run's "not fwmark T
// lookup T" rule, if no route or rule but that run's uses it; else 0.
func (i *Interface) staleTableLocked() (int, error) {
	t := 0
	for _, ru := range i.stale.Rules {
		if ru.Invert && ru.Table > 0 && uint32(ru.Table) == ru.Mark {
			t = ru.Table
		}
	}
	if t == 0 {
		return 0, nil
	}
	routes, err := i.rt.Routes(t)
	if err != nil {
		return 0, fmt.Errorf("%w: reading table %d: %v", ErrSetup, t, err)
	}
	for _, e := range routes {
		if !slices.ContainsFunc(i.stale.Routes, func(r failRoute) bool { return r.is(e) }) {
			return 0, nil // someone else's route: pick a free table
		}
	}
	for _, v6 := range []bool{false, true} {
		rules, err := i.rt.Rules(v6)
		if err != nil {
			return 0, fmt.Errorf("%w: reading rules: %v", ErrSetup, err)
		}
		n := 0
		for _, ru := range rules {
			if ru.Table == t {
				n++
			}
		}
		recorded := 0
		for _, ru := range i.stale.Rules {
			if ru.Table == t && ru.V6 == v6 {
				recorded++
			}
		}
		if n > recorded {
			return 0, nil
		}
	}
	return t, nil
}

// removeStaleLocked removes what the crashed run left and this run did
// not take over, and says what it did. Failures are logged: they must
// not keep the tunnel down.
func (i *Interface) removeStaleLocked() error {
	var removed []string
	for _, ru := range i.stale.Rules {
		err := i.rt.DelRule(ru)
		switch {
		case err == nil:
			removed = append(removed, ru.String())
		case !gone(err):
			i.log.Warn("removing a policy rule left by a previous run", "rule", ru.String(), "err", err)
		}
	}
	for _, r := range i.stale.Routes {
		err := i.rt.DelUnreachable(r.prefix(), r.Table, failClosedMetric)
		switch {
		case err == nil:
			removed = append(removed, r.String())
		case !gone(err):
			i.log.Warn("removing an unreachable route left by a previous run", "route", r.String(), "err", err)
		}
	}
	i.stale = state{}
	if len(removed) > 0 {
		i.log.Warn("removed the policy rules a previous run left (it did not stop cleanly)", "name", i.name, "rules", removed)
	}
	if len(i.adopted) > 0 {
		i.log.Warn("took over the policy rules and routes a previous run left (it did not stop cleanly, and its traffic was dropped meanwhile)",
			"name", i.name, "taken_over", i.adopted)
	}
	switch {
	case len(i.rules)+len(i.failRoutes) > 0:
		return i.saveStateLocked() // the record without the crashed run's leftovers
	case i.inherited && i.stateFile != "":
		if err := removeState(i.stateFile); err != nil {
			return fmt.Errorf("%w: state file: %w", ErrSetup, err)
		}
	}
	return nil
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
