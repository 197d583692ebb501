package ifsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// DNSConfig says whether and how to point the system at the tunnel's name
// servers.
type DNSConfig struct {
	Mode    string // DNSDisabled (or empty) or DNSEtcResolvConf
	Servers []netip.Addr
	Search  []string

	// ResolvConf is the file to write; default /etc/resolv.conf.
	ResolvConf string
	// Backup is where the original is kept while the tunnel runs, so a
	// tunnel that crashed restores it on its next start; default
	// /var/lib/pipeguard/resolv.conf.<interface>.
	Backup string
}

// dnsState is what restore needs.
type dnsState struct {
	path, backup string
	original     []byte
	existed      bool // whether path existed: if not, restore removes it
	mode         os.FileMode
}

// applyDNS writes resolv.conf with the tunnel's servers after saving the
// original to the backup file. A backup left by a crashed run is restored
// first, so the saved original is the system's and not our own file.
func applyDNS(c DNSConfig, iface string) (*dnsState, error) {
	if c.Mode != DNSEtcResolvConf {
		return nil, fmt.Errorf("%w: unknown mode %q (want %s or %s)", ErrDNS, c.Mode, DNSDisabled, DNSEtcResolvConf)
	}
	if len(c.Servers) == 0 {
		return nil, fmt.Errorf("%w: --dns-control %s but the config has no DNS servers", ErrDNS, c.Mode)
	}
	st := &dnsState{path: c.ResolvConf, backup: c.Backup}
	if st.path == "" {
		st.path = "/etc/resolv.conf"
	}
	if st.backup == "" {
		st.backup = "/var/lib/pipeguard/resolv.conf." + iface
	}
	if old, err := os.ReadFile(st.backup); err == nil {
		if err := os.WriteFile(st.path, old, 0o644); err != nil {
			return nil, fmt.Errorf("%w: restoring %s from a crashed run's backup: %v", ErrDNS, st.path, err)
		}
	}
	orig, err := os.ReadFile(st.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %v", ErrDNS, err)
	}
	st.original, st.existed, st.mode = orig, err == nil, 0o644
	if fi, err := os.Stat(st.path); err == nil {
		st.mode = fi.Mode().Perm()
	}
	if err := os.WriteFile(st.backup, orig, 0o600); err != nil {
		return nil, fmt.Errorf("%w: saving the original resolv.conf: %v", ErrDNS, err)
	}
	if err := os.WriteFile(st.path, []byte(resolvConf(c, iface)), st.mode); err != nil {
		os.Remove(st.backup)
		return nil, fmt.Errorf("%w: %v", ErrDNS, err)
	}
	return st, nil
}

// resolvConf is the file's new content.
func resolvConf(c DNSConfig, iface string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by pipeguard-headless-client for %s; restored when it stops.\n", iface)
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(c.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Search, " "))
	}
	return b.String()
}

// restore puts the original file back and deletes the backup.
func (st *dnsState) restore() error {
	if !st.existed {
		if err := os.Remove(st.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: removing %s: %v", ErrDNS, st.path, err)
		}
	} else if err := os.WriteFile(st.path, st.original, st.mode); err != nil {
		return fmt.Errorf("%w: restoring %s: %v", ErrDNS, st.path, err)
	}
	if err := os.Remove(st.backup); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrDNS, err)
	}
	return nil
}
