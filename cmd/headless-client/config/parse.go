package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"pipeguard/noise"
)

// wgQuickOnly are wg-quick keys that PipeGuard knows and refuses, with
// the reason, so the admin learns why rather than just "unknown".
var wgQuickOnly = map[string]string{
	"preup":      "PipeGuard runs no hook scripts",
	"postup":     "PipeGuard runs no hook scripts",
	"predown":    "PipeGuard runs no hook scripts",
	"postdown":   "PipeGuard runs no hook scripts",
	"saveconfig": "PipeGuard never writes its config",
}

// parser is the state of one Parse call.
type parser struct {
	file    string
	cfg     Config
	section string         // "", "interface" or "peer"
	iface   int            // line of [Interface], 0 if none yet
	seen    map[string]int // single-valued keys of this section: line first set
	peer    *Peer          // the [Peer] section being read, nil in [Interface]
	cur     int            // the line being read, 1-based
}

// Parse parses a config file's contents; file names it in errors. It
// returns the first problem found, as a *LineError where a line is to
// blame.
func Parse(file string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, file, MaxFileSize)
	}
	p := &parser{file: file}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line := string(raw)
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p.cur = i + 1
		if err := p.line(line); err != nil {
			return nil, &LineError{File: file, Line: i + 1, Err: err}
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return &p.cfg, nil
}

// line parses one line, stripped of comment and blanks.
func (p *parser) line(line string) error {
	if strings.HasPrefix(line, "[") {
		return p.header(line)
	}
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		if lead := leadingName(line); knownKey(lead) {
			return fmt.Errorf("%w: %s must be followed by = and its value (%s)", ErrSyntax, lead, notShown)
		}
		return fmt.Errorf("%w: want Key = Value or [Section] (%s)", ErrSyntax, notShown)
	}
	key, val := strings.TrimSpace(k), strings.TrimSpace(v)
	if err := checkKeyName(key); err != nil {
		return err
	}
	lower := strings.ToLower(key)
	if p.section == "" {
		return fmt.Errorf("%w: %s before any [Interface] or [Peer] section", ErrSyntax, key)
	}
	if why, ok := wgQuickOnly[lower]; ok {
		return fmt.Errorf("%w: %s (%s)", ErrUnknownKey, key, why)
	}
	if val == "" {
		return fmt.Errorf("%w: %s has no value", ErrBadValue, key)
	}
	if p.section == "interface" {
		return p.interfaceKey(key, lower, val)
	}
	return p.peerKey(key, lower, val)
}

func (p *parser) header(line string) error {
	if !strings.HasSuffix(line, "]") {
		return fmt.Errorf("%w: a section header without its closing ] (%s)", ErrSyntax, notShown)
	}
	p.seen = map[string]int{}
	name := strings.TrimSpace(line[1 : len(line)-1])
	switch strings.ToLower(name) {
	case "interface":
		if p.iface != 0 {
			return fmt.Errorf("%w: second [Interface] section (the first is at line %d)", ErrDuplicate, p.iface)
		}
		p.section, p.iface, p.peer = "interface", p.lineNo(), nil
	case "peer":
		p.cfg.Peers = append(p.cfg.Peers, Peer{File: p.file, Line: p.lineNo()})
		p.section, p.peer = "peer", &p.cfg.Peers[len(p.cfg.Peers)-1]
	default:
		if !isName(name) {
			return fmt.Errorf("%w: want [Interface] or [Peer] (%s)", ErrUnknownSect, notShown)
		}
		return fmt.Errorf("%w: [%s] (want [Interface] or [Peer])", ErrUnknownSect, name)
	}
	return nil
}

// once rejects a second occurrence of a single-valued key in a section.
func (p *parser) once(key, lower string) error {
	if p.seen == nil {
		p.seen = map[string]int{}
	}
	if prev, ok := p.seen[lower]; ok {
		return fmt.Errorf("%w: %s is set twice in this section (also at line %d)", ErrDuplicate, key, prev)
	}
	p.seen[lower] = p.lineNo()
	return nil
}

func (p *parser) interfaceKey(key, lower, val string) error {
	in := &p.cfg.Interface
	switch lower {
	case "privatekey":
		if err := p.once(key, lower); err != nil {
			return err
		}
		k, err := noise.ParsePrivateKey(val)
		if err != nil || k.IsZero() {
			return fmt.Errorf("%w: PrivateKey is not a base64 WireGuard key (44 characters, as `wg genkey` prints)", ErrBadKey)
		}
		in.PrivateKey = k
	case "address":
		for _, s := range splitList(val) {
			pfx, err := parseAddress(s)
			if err != nil {
				return err
			}
			in.Addresses = append(in.Addresses, pfx)
		}
	case "listenport":
		if err := p.once(key, lower); err != nil {
			return err
		}
		n, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: ListenPort %s is not a port number 0..65535", ErrBadValue, quote(val))
		}
		in.ListenPort = uint16(n)
	case "mtu":
		if err := p.once(key, lower); err != nil {
			return err
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < MinMTU || n > MaxMTU {
			return fmt.Errorf("%w: MTU %s is not in %d..%d (PipeGuard's packets are at most %d bytes)", ErrBadValue, quote(val), MinMTU, MaxMTU, MaxMTU)
		}
		in.MTU = n
	case "table":
		if err := p.once(key, lower); err != nil {
			return err
		}
		t, err := parseTable(val)
		if err != nil {
			return err
		}
		in.Table = t
	case "fwmark":
		if err := p.once(key, lower); err != nil {
			return err
		}
		m, err := parseFwMark(val)
		if err != nil {
			return err
		}
		in.FwMark = m
	case "dns":
		for _, s := range splitList(val) {
			if a, err := netip.ParseAddr(s); err == nil {
				in.DNS = append(in.DNS, a.WithZone(""))
				continue
			}
			if !validHostname(s) {
				return fmt.Errorf("%w: DNS entry %s is neither an IP address nor a search domain", ErrBadValue, quote(s))
			}
			in.DNSSearch = append(in.DNSSearch, s)
		}
	default:
		return fmt.Errorf("%w: %s in [Interface]", ErrUnknownKey, key)
	}
	return nil
}

func (p *parser) peerKey(key, lower, val string) error {
	pe := p.peer
	switch lower {
	case "publickey":
		if err := p.once(key, lower); err != nil {
			return err
		}
		k, err := noise.ParsePublicKey(val)
		if err != nil || k.IsZero() {
			return fmt.Errorf("%w: PublicKey is not a base64 WireGuard key (44 characters, as `wg pubkey` prints)", ErrBadKey)
		}
		if noise.CheckPublicKey(k) != nil {
			// The tunnel refuses it too; refused here, a reload
			// fails before it changes anything.
			return fmt.Errorf("%w: PublicKey is a low-order point, which no handshake can use (a typo or a forged key)", ErrBadKey)
		}
		pe.PublicKey = k
	case "presharedkey":
		if err := p.once(key, lower); err != nil {
			return err
		}
		k, err := noise.ParsePresharedKey(val)
		if err != nil {
			return fmt.Errorf("%w: PresharedKey is not a base64 WireGuard key (44 characters, as `wg genpsk` prints)", ErrBadKey)
		}
		pe.PresharedKey = k
	case "endpoint":
		if err := p.once(key, lower); err != nil {
			return err
		}
		if err := checkEndpoint(val); err != nil {
			return err
		}
		pe.Endpoint, pe.EndpointLine = val, p.lineNo()
	case "allowedips":
		for _, s := range splitList(val) {
			pfx, err := parseAddress(s)
			if err != nil {
				return err
			}
			pe.AllowedIPs = append(pe.AllowedIPs, pfx.Masked())
		}
	case "persistentkeepalive":
		if err := p.once(key, lower); err != nil {
			return err
		}
		if strings.EqualFold(val, "off") {
			return nil
		}
		n, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: PersistentKeepalive %s is not off or seconds 0..65535", ErrBadValue, quote(val))
		}
		pe.PersistentKeepalive = time.Duration(n) * time.Second
	default:
		return fmt.Errorf("%w: %s in [Peer]", ErrUnknownKey, key)
	}
	return nil
}

// finish checks what only the whole file can tell.
func (p *parser) finish() error {
	at := func(line int, err error) error { return &LineError{File: p.file, Line: line, Err: err} }
	if p.iface == 0 {
		return fmt.Errorf("%w: %s has no [Interface] section", ErrMissing, p.file)
	}
	in := &p.cfg.Interface
	if in.PrivateKey.IsZero() {
		return at(p.iface, fmt.Errorf("%w: PrivateKey in [Interface]", ErrMissing))
	}
	if in.MTU == 0 {
		in.MTU = DefaultMTU
	}
	for _, a := range in.Addresses {
		if a.Addr().Is6() && in.MTU < 1280 {
			// Linux turns IPv6 off on a link below 1280.
			return at(p.iface, fmt.Errorf("%w: MTU %d is below 1280, which IPv6 address %s needs", ErrBadValue, in.MTU, a))
		}
	}
	self := in.PrivateKey.Public()
	keys := map[noise.PublicKey]int{}
	for _, pe := range p.cfg.Peers {
		if pe.PublicKey.IsZero() {
			return at(pe.Line, fmt.Errorf("%w: PublicKey in [Peer]", ErrMissing))
		}
		if pe.PublicKey == self {
			return at(pe.Line, fmt.Errorf("%w: the peer's PublicKey is this interface's own", ErrBadKey))
		}
		if prev, ok := keys[pe.PublicKey]; ok {
			return at(pe.Line, fmt.Errorf("%w: peer %s (also at line %d)", ErrDuplicate, pe.PublicKey, prev))
		}
		keys[pe.PublicKey] = pe.Line
	}
	return nil
}

// lineNo is the line being read, for the positions a Config records.
func (p *parser) lineNo() int { return p.cur }

// splitList splits a comma-separated value; empty items stay, so that
// "a,,b" is an error rather than silently "a,b".
func splitList(v string) []string {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// parseAddress parses an address with an optional prefix length; a bare
// address is a host prefix (/32 or /128), as in wg(8).
func parseAddress(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("%w: empty item in a list", ErrBadCIDR)
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%w: %s", ErrBadCIDR, quote(s))
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrBadCIDR, quote(s))
	}
	return pfx, nil
}

// parseTable reads Table as wg-quick does, less table names: auto (the
// default), off, or a routing table number.
func parseTable(v string) (int64, error) {
	switch strings.ToLower(v) {
	case "auto":
		return TableAuto, nil
	case "off":
		return TableOff, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: Table %s is not auto, off or a routing table number 1..4294967295", ErrBadValue, quote(v))
	}
	return int64(n), nil
}

// parseFwMark reads FwMark as wg(8) does: off, or a 32-bit number in
// decimal or 0x hex; 0 is off.
func parseFwMark(v string) (uint32, error) {
	if strings.EqualFold(v, "off") {
		return 0, nil
	}
	base, digits := 10, v
	if h, ok := strings.CutPrefix(strings.ToLower(v), "0x"); ok {
		base, digits = 16, h
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil || digits == "" || digits[0] == '+' {
		return 0, fmt.Errorf("%w: FwMark %s is not off or a 32-bit number (decimal or 0x hex)", ErrBadValue, quote(v))
	}
	return uint32(n), nil
}

// checkEndpoint validates host:port, [v6]:port or name:port.
func checkEndpoint(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w: %s is not host:port (write IPv6 as [addr]:port)", ErrBadEndpoint, quote(s))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%w: %s has no port 1..65535", ErrBadEndpoint, quote(s))
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || a.IsUnspecified() {
			return fmt.Errorf("%w: %s is not a usable address", ErrBadEndpoint, quote(s))
		}
		if a.Is6() && !a.Is4In6() && !strings.HasPrefix(s, "[") {
			return fmt.Errorf("%w: %s: write IPv6 as [addr]:port", ErrBadEndpoint, quote(s))
		}
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("%w: %s: host is neither an IP address nor a host name", ErrBadEndpoint, quote(s))
	}
	return nil
}

// validHostname checks the letters-digits-hyphens rule of host names
// (RFC 1123), with an optional final dot.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
