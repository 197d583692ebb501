package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/dns"
	"pipeguard/cmd/headless-client/ifsetup"
	"pipeguard/cmd/headless-client/safedir"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/stages"
)

// startPlan is everything a start needs to know before it creates
// anything, as preflight found it.
type startPlan struct {
	iface    string
	cfg      *config.Config
	peers    []stages.PeerConfig // with endpoints resolved
	id       deviceIDPlan
	dnsSys   *dns.System
	dnsMode  dns.Mode
	dnsWhy   string // why that mode, for the log
	dns      dns.Settings
	routes   int
	fullTunl bool
	bypass   string   // the family a full tunnel of the other leaves outside it ("IPv6"), or ""
	bypassBy []string // the main table's routes of that family
	blocked  bool     // --block-untunneled: that family is dropped instead
}

// preflight makes every check that can refuse a start, in the order the
// start meets them, and creates nothing: no interface, socket, state or
// log file. `standalone --check` is preflight alone; a start runs it
// before it makes anything, so a refused start leaves nothing behind.
// The checks live here once, for both.
func (c *standaloneCmd) preflight(ctx context.Context) (*startPlan, error) {
	p := &startPlan{iface: c.Interface}
	var err error
	if p.iface == "" {
		p.iface, err = config.InterfaceName(c.Config)
	} else {
		err = config.CheckInterfaceName(p.iface)
	}
	if err != nil {
		return nil, err
	}
	// Permissions, owner and parse.
	if p.cfg, err = config.Load(c.Config); err != nil {
		return nil, err
	}
	if err := c.queues().check(); err != nil {
		return nil, err
	}
	if c.FailOpen && c.BlockUntunneled {
		return nil, errBlockFailOpen
	}
	p.blocked = c.BlockUntunneled
	// Keys (a low-order peer key too) and the dataplane settings, as the
	// tunnel would refuse them.
	sc := stages.Config{PrivateKey: p.cfg.Interface.PrivateKey, Engine: stages.Engine(c.Engine), Workers: c.Workers}
	c.queues().apply(&sc)
	for _, pe := range p.cfg.Peers {
		sc.Peers = append(sc.Peers, stages.PeerConfig{PublicKey: pe.PublicKey, PresharedKey: pe.PresharedKey})
	}
	if err := sc.Check(); err != nil {
		return nil, fmt.Errorf("headless-client: %s: %w", c.Config, err)
	}
	if err := checkNetAdmin(); err != nil {
		return nil, err
	}
	if _, err := net.InterfaceByName(p.iface); err == nil {
		return nil, fmt.Errorf("headless-client: interface %s already exists (another tunnel has it, or remove it: ip link del %s)", p.iface, p.iface)
	}
	// Routes: endpoints resolved, then loops (a route over a peer's own
	// endpoint) and conflicts (a prefix another route already has). The
	// lookups carry the mark a crashed run's rules let pass, if any.
	if p.peers, err = resolvePeers(ctx, p.cfg, markedResolver(ifsetup.StaleMark(c.rulesFile(p.iface), p.iface))); err != nil {
		return nil, err
	}
	routes, endpoints := routesOf(p.peers)
	table := p.cfg.Interface.Table
	if err := ifsetup.CheckRoutes(routes, endpoints, table); err != nil {
		return nil, err
	}
	if err := ifsetup.CheckConflicts(p.iface, routes, table); err != nil {
		return nil, err
	}
	p.routes = len(routes)
	for _, r := range routes {
		p.fullTunl = p.fullTunl || r.Bits() == 0 && table != ifsetup.TableOff
	}
	if p.bypass, p.bypassBy, err = ifsetup.Bypass(routes, table); err != nil {
		return nil, err
	}
	if err := checkPorts(p.cfg.Interface.ListenPort, c.MetricsAddr, c.PprofAddr); err != nil {
		return nil, err
	}
	// wg's socket directory: another user who could write it could stand
	// in for the tunnel's socket.
	if err := uapi.CheckSocketDir(); err != nil {
		return nil, err
	}
	// The state directory before anything reads it: the device id, and
	// at start the records of what a crashed run left to undo.
	if err := checkStateDir(c.StateDir); err != nil {
		return nil, err
	}
	if err := p.checkDNS(c); err != nil {
		return nil, err
	}
	if p.id, err = lookupDeviceID(os.Getenv("PIPEGUARD_ID"), c.StateDir); err != nil {
		return nil, err
	}
	if c.LogDir != "" {
		if err := safedir.Check(c.LogDir); err != nil {
			return nil, fmt.Errorf("headless-client: log directory %s: %w", c.LogDir, err)
		}
		if err := canCreate(filepath.Join(c.LogDir, "pipeguard-"+p.iface+".log")); err != nil {
			return nil, fmt.Errorf("headless-client: log directory %s: %w", c.LogDir, err)
		}
	}
	return p, nil
}

// checkDNS picks the DNS mode (auto: by whether systemd-resolved runs)
// and checks what it needs, if the config has servers to apply.
func (p *startPlan) checkDNS(c *standaloneCmd) error {
	p.dnsSys = &dns.System{StateDir: c.StateDir}
	p.dns = dns.Settings{Interface: p.iface, Servers: p.cfg.Interface.DNS, Search: p.cfg.Interface.DNSSearch, DefaultRoute: p.fullTunl}
	var err error
	if p.dns.Empty() {
		// Nothing to apply, so nothing to find out (auto would ask the
		// system bus).
		p.dnsMode, err = p.dnsSys.Mode(dns.Disabled)
		p.dnsWhy = "the config has no DNS servers"
		return err
	}
	if p.dnsMode, p.dnsWhy, err = p.dnsSys.Select(c.DNSControl); err != nil {
		return err
	}
	if p.dnsMode.Name() == dns.Disabled {
		return nil
	}
	if err := p.dnsMode.Check(p.dns); err != nil {
		return err
	}
	if err := canCreate(filepath.Join(c.StateDir, "dns", p.iface+".json")); err != nil {
		return fmt.Errorf("headless-client: DNS state in %s: %w", c.StateDir, err)
	}
	return nil
}

// errBlockFailOpen refuses flags that contradict each other.
var errBlockFailOpen = errors.New("headless-client: --block-untunneled drops the other family with the fail-closed routes, which --fail-open leaves out: use one or the other")

// summary is --check's one line.
func (p *startPlan) summary(cfgPath string) string {
	port := "UDP port: any free"
	if lp := p.cfg.Interface.ListenPort; lp != 0 {
		port = fmt.Sprintf("UDP port %d", lp)
	}
	d := "DNS: none in the config"
	if !p.dns.Empty() {
		d = fmt.Sprintf("DNS: %s (%s)", p.dnsMode.Name(), p.dnsWhy)
	}
	id := "device id from " + p.id.source
	if p.id.stateDir != "" {
		id = "device id: a new one, saved at start to " + deviceIDFile(p.id.stateDir)
	}
	return fmt.Sprintf("headless-client: %s: ready to start %s (peers %d, routes %d, %s, %s, %s)%s",
		cfgPath, p.iface, len(p.peers), p.routes, port, d, id, p.bypassNote())
}

// bypassNote is --check's warning about a family that goes around a full
// tunnel of the other, or "".
func (p *startPlan) bypassNote() string {
	switch {
	case p.bypass == "":
		return ""
	case p.blocked:
		return fmt.Sprintf("; %s blocked (--block-untunneled)", p.bypass)
	}
	return fmt.Sprintf("; warning: %s bypasses the tunnel (%s, not the other family, and the host has %s routes: %s)",
		p.bypass, p.tunneledFamily(), p.bypass, strings.Join(p.bypassBy, "; "))
}

// tunneledFamily names the default route a one-family full tunnel has.
func (p *startPlan) tunneledFamily() string {
	if p.bypass == "IPv6" {
		return "AllowedIPs has 0.0.0.0/0"
	}
	return "AllowedIPs has ::/0"
}

// warnBypass logs, once at start, the family a full tunnel of the other
// leaves outside it, or that it is blocked.
func (p *startPlan) warnBypass(log *slog.Logger) {
	if p.bypass == "" {
		return
	}
	if p.blocked {
		log.Info(p.bypass+" traffic is dropped (--block-untunneled): the tunnel carries only the other family", "family", p.bypass)
		return
	}
	other := "::/0"
	if p.bypass == "IPv4" {
		other = "0.0.0.0/0"
	}
	log.Warn(p.bypass+" traffic bypasses the tunnel and leaves unencrypted: "+p.tunneledFamily()+" but not "+other+
		", and this host has "+p.bypass+" routes; add "+other+" to AllowedIPs to tunnel it too",
		"family", p.bypass, "routes", p.bypassBy)
}

// canCreate reports whether path could be written (if it exists) or
// created, with any missing directories, by this process, judging by its
// effective ids and capabilities, without creating anything.
func canCreate(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS)
	}
	dir := filepath.Dir(path)
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return err
		}
		dir = parent
	}
}

// checkPorts refuses a listen port that a socket already holds, and an
// HTTP endpoint address that is not this host's or whose port is taken,
// reading /proc/net rather than binding, so nothing is created.
func checkPorts(udpPort uint16, httpAddrs ...string) error {
	if udpPort != 0 && portInUse("udp", udpPort) {
		return fmt.Errorf("headless-client: UDP port %d: address already in use (ListenPort; see ss -ulpn sport = :%d)", udpPort, udpPort)
	}
	for i, addr := range httpAddrs {
		if addr == "" {
			continue
		}
		what := [...]string{"metrics", "pprof"}[min(i, 1)]
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("headless-client: %s endpoint %s: %w", what, addr, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return fmt.Errorf("headless-client: %s endpoint %s: bad port %q", what, addr, portStr)
		}
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() && !isLocalAddr(a) {
			return fmt.Errorf("headless-client: %s endpoint %s: %s is not an address of this host", what, addr, a)
		}
		if port != 0 && portInUse("tcp", uint16(port)) {
			return fmt.Errorf("headless-client: %s endpoint %s: port %d is already in use", what, addr, port)
		}
	}
	return nil
}

// isLocalAddr reports whether a is an address of an interface here.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: let the bind decide
	}
	for _, ia := range addrs {
		if p, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	return false
}

// portInUse reports whether a socket of proto ("udp" or "tcp", IPv4 or
// IPv6) holds port locally, from /proc/net/<proto>{,6}: any UDP socket
// bound to it, or a listening TCP socket. An unreadable table says no;
// the bind then has the last word.
func portInUse(proto string, port uint16) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, table := range []string{proto, proto + "6"} {
		f, err := os.Open("/proc/net/" + table)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		s.Scan() // the header
		for s.Scan() {
			// sl local_address rem_address st ...
			fields := strings.Fields(s.Text())
			if len(fields) < 4 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			if proto == "udp" || fields[3] == "0A" { // 0A: TCP_LISTEN
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// startDNS logs the DNS mode and why, and undoes what an earlier run of
// the interface left (it crashed or was killed), whatever mode this start
// uses. A leftover that cannot be undone is logged and kept for the next
// start; the tunnel starts all the same.
func (p *startPlan) startDNS(log *slog.Logger) {
	p.dnsSys.Log = log
	log.Info("DNS control", "mode", p.dnsMode.Name(), "why", p.dnsWhy, "servers", p.dns.Servers, "search", p.dns.Search)
	undone, err := p.dnsSys.Recover(p.iface)
	if len(undone) > 0 {
		log.Warn("DNS: undid what an earlier run left (it did not stop cleanly)", "modes", undone)
	}
	if err != nil {
		log.Error("DNS: could not undo what an earlier run left; will try again at the next start", "err", err)
	}
}
