// Package config reads the WireGuard configuration files of the headless
// client: the INI-like format `wg-quick` uses, with an [Interface] section
// (PrivateKey, Address, ListenPort, MTU, DNS, Table, FwMark) and [Peer] sections
// (PublicKey, PresharedKey, Endpoint, AllowedIPs, PersistentKeepalive).
//
// Parsing is strict: an unknown key, a bad key, address, CIDR or endpoint
// is an error that names the file and line, because a tunnel that starts
// with a silently ignored line is a tunnel that routes differently from
// what the admin wrote. Keys are case-insensitive and `#` starts a
// comment, as in wg(8).
//
// [Load] also checks the file's mode and owner: it holds a private key.
//
// Nothing here resolves host names or touches the network; endpoints stay
// text until [Peer.ResolveEndpoint].
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"pipeguard/noise"
)

// Errors, each wrapped by a *LineError (or, for Load, by the file's
// name) so callers can test with errors.Is.
var (
	ErrSyntax       = errors.New("config: syntax error")
	ErrUnknownKey   = errors.New("config: unknown key")
	ErrUnknownSect  = errors.New("config: unknown section")
	ErrDuplicate    = errors.New("config: duplicate")
	ErrMissing      = errors.New("config: missing")
	ErrBadKey       = errors.New("config: bad key")
	ErrBadCIDR      = errors.New("config: bad address or CIDR")
	ErrBadEndpoint  = errors.New("config: bad endpoint")
	ErrBadValue     = errors.New("config: bad value")
	ErrPermissions  = errors.New("config: file is readable or writable by group or others")
	ErrOwner        = errors.New("config: file is owned by another user")
	ErrDirectory    = errors.New("config: another user can change the file's directory")
	ErrTooLarge     = errors.New("config: file too large")
	ErrBadInterface = errors.New("config: bad interface name")
)

// Limits on what a config file may hold, so a wrong path (a log file, a
// device) fails fast instead of being read whole.
const (
	// MaxFileSize is far beyond any real config: a peer takes about 250
	// bytes, so this holds thousands.
	MaxFileSize = 1 << 20
	// MaxMTU is the tunnel MTU PipeGuard's packet arrays are sized for.
	MaxMTU = 1280
	// MinMTU is IPv4's minimum datagram size every host must accept.
	MinMTU = 576
	// DefaultMTU is the MTU when the file sets none.
	DefaultMTU = 1280
)

// Config is one parsed file.
type Config struct {
	Interface Interface
	Peers     []Peer
}

// Interface is the [Interface] section.
type Interface struct {
	PrivateKey noise.PrivateKey
	Addresses  []netip.Prefix // with host bits, as written: 10.0.0.2/24
	ListenPort uint16         // 0: a port the kernel picks
	MTU        int            // DefaultMTU when not set
	DNS        []netip.Addr   // name servers
	DNSSearch  []string       // DNS entries that are names: search domains, as in wg-quick
	Table      int64          // routing table for AllowedIPs: TableAuto, TableOff or a table number
	FwMark     uint32         // firewall mark on the tunnel's sockets; 0: none
}

// Table values besides table numbers (1..2^32-1), as wg-quick's Table key
// has them.
const (
	// TableAuto: routes in the main table; 0.0.0.0/0 and ::/0 by policy
	// routing in a table of their own (a full tunnel).
	TableAuto = 0
	// TableOff: no routes at all.
	TableOff = -1
)

// Peer is one [Peer] section.
type Peer struct {
	PublicKey           noise.PublicKey
	PresharedKey        noise.PresharedKey // zero when not set
	Endpoint            string             // host:port as written (validated); empty when not set
	AllowedIPs          []netip.Prefix     // masked
	PersistentKeepalive time.Duration      // 0: off

	// File and Line locate the section header and the Endpoint line, so
	// that a failure to resolve the endpoint later still names the line.
	File         string
	Line         int
	EndpointLine int
}

// LineError is a problem at one line of a file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }
