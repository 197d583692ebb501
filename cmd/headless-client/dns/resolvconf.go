package dns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// resolvconf hands the servers to resolvconf(8), exactly as wg-quick
// does (wireguard-tools, src/wg-quick/linux.bash, set_dns/unset_dns):
//
//	printf 'nameserver %s\n' DNS...; printf 'search %s\n' "SEARCH..." |
//	    resolvconf -a "$(resolvconf_iface_prefix)$INTERFACE" -m 0 -x
//	resolvconf -d "$(resolvconf_iface_prefix)$INTERFACE" -f
//
// -m 0 gives the interface the first metric, -x makes it exclusive
// (openresolv), -f ignores an interface not there. openresolv and
// Debian's resolvconf both take this, and both restore the system's
// resolv.conf themselves once the interface is gone.
type resolvconf struct{ sys *System }

func (m *resolvconf) Name() string { return Resolvconf }

func (sys *System) resolvconfCmd() []string {
	if len(sys.ResolvconfCmd) > 0 {
		return sys.ResolvconfCmd
	}
	return []string{"resolvconf"}
}

// Check refuses when there is no resolvconf program.
func (m *resolvconf) Check(Settings) error {
	if _, err := exec.LookPath(m.sys.resolvconfCmd()[0]); err != nil {
		return fmt.Errorf("%w: --dns-control %s: no resolvconf program (apt install openresolv, or resolvconf): %v", ErrPrereq, Resolvconf, err)
	}
	return nil
}

func (m *resolvconf) apply(s Settings, rec *record) error {
	rec.Name = m.sys.resolvconfPrefix() + s.Interface
	if err := rec.save(); err != nil {
		return fmt.Errorf("%w: %v", ErrDNS, err)
	}
	var in bytes.Buffer
	for _, a := range s.Servers {
		fmt.Fprintf(&in, "nameserver %s\n", a)
	}
	if len(s.Search) > 0 {
		fmt.Fprintf(&in, "search %s\n", strings.Join(s.Search, " "))
	}
	return m.run(&in, "-a", rec.Name, "-m", "0", "-x")
}

func (m *resolvconf) undo(rec *record) error {
	if rec.Name == "" {
		return nil // apply stopped before it named the interface
	}
	return m.run(nil, "-d", rec.Name, "-f")
}

// run runs resolvconf with args and stdin.
func (m *resolvconf) run(stdin *bytes.Buffer, args ...string) error {
	argv := append(append([]string(nil), m.sys.resolvconfCmd()...), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s: %v: %s", ErrDNS, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ifaceOrderEntry is wg-quick's pattern for the interface-order line
// whose name it prefixes: a plain name followed by '*' ("tun*").
var ifaceOrderEntry = regexp.MustCompile(`^([A-Za-z0-9-]+)\*$`)

// resolvconfPrefix is wg-quick's resolvconf_iface_prefix: with Debian's
// resolvconf (an /etc/resolvconf/interface-order file, and a resolvconf
// that is no symlink to another program), the name of the first
// "NAME*" line and a dot, so the tunnel sorts where that file puts
// tunnels ("tun."); with openresolv, nothing.
func (sys *System) resolvconfPrefix() string {
	order := sys.InterfaceOrder
	if order == "" {
		order = "/etc/resolvconf/interface-order"
	}
	f, err := os.Open(order)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	if bin, err := exec.LookPath(sys.resolvconfCmd()[0]); err == nil {
		if fi, err := os.Lstat(bin); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return ""
		}
	} else if !errors.Is(err, exec.ErrNotFound) {
		return ""
	}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if m := ifaceOrderEntry.FindStringSubmatch(strings.TrimSpace(s.Text())); m != nil {
			return m[1] + "."
		}
	}
	return ""
}
