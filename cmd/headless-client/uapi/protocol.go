// Package uapi serves WireGuard's cross-platform userspace configuration
// protocol (https://www.wireguard.com/xplatform/) on a Unix socket at
// /var/run/wireguard/<interface>.sock, so that the stock wg(8) tool works
// with a PipeGuard tunnel: `wg show` lists peers, endpoints, handshakes and
// transfer counters, and `wg set` adds and removes peers and changes their
// settings live.
//
// The protocol is line-based: a client sends "get=1\n\n" or "set=1\n"
// followed by key=value lines and a blank line; the server answers a get
// with key=value lines, and both with "errno=N\n\n". Keys, order and error
// numbers follow wireguard-go's device/uapi.go, which wg(8) is tested
// against.
//
// Unlike wireguard-go, a set request is all or nothing: it is parsed
// whole and checked before anything is applied, and the one step that
// can still fail (binding the new port) comes first, so a request with
// any error changes nothing.
package uapi

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"pipeguard/noise"
)

// Errors of the protocol. Each maps to the errno wireguard-go answers
// with (see Errno).
var (
	ErrProtocol = errors.New("uapi: malformed request")
	ErrInvalid  = errors.New("uapi: invalid value")
	// ErrSocket: the tunnel's UDP socket refused the change: the listen
	// port is taken, or the firewall mark could not be set.
	ErrSocket = errors.New("uapi: cannot change the UDP socket")
	// ErrUnsupported: the device cannot make this change at all (a
	// tunnel on a socket that cannot move).
	ErrUnsupported = errors.New("uapi: change not supported by this tunnel")
	ErrIO          = errors.New("uapi: i/o error")
	ErrInUse       = errors.New("uapi: socket in use by another process")
)

// Error numbers as wireguard-go's ipc package defines them: negative
// errno values (EIO, EPROTO, EINVAL, EADDRINUSE), written as such; and
// EOPNOTSUPP, which wireguard-go has no case for.
const (
	errnoIO          = -5
	errnoProtocol    = -71
	errnoInvalid     = -22
	errnoPortInUse   = -98
	errnoUnsupported = -95
)

// Errno is the number the protocol reports for err (0 for nil).
func Errno(err error) int64 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrProtocol):
		return errnoProtocol
	case errors.Is(err, ErrIO):
		return errnoIO
	case errors.Is(err, ErrSocket):
		// wireguard-go answers every failed rebind and fwmark change
		// with EADDRINUSE.
		return errnoPortInUse
	case errors.Is(err, ErrUnsupported):
		return errnoUnsupported
	default:
		return errnoInvalid
	}
}

// maxLine bounds one request line. The longest valid line is an IPv6
// allowed_ip with "-" (about 60 bytes); 4 KiB leaves room and bounds
// memory per connection.
const maxLine = 4096

// SetRequest is a parsed "set=1" operation. Nil pointers leave a setting
// as it is.
type SetRequest struct {
	PrivateKey   *noise.PrivateKey // zero key: remove the key
	ListenPort   *uint16
	FwMark       *uint32
	ReplacePeers bool
	Peers        []PeerChange
}

// PeerChange is one public_key=... block of a set request.
type PeerChange struct {
	PublicKey           noise.PublicKey
	Remove              bool
	UpdateOnly          bool // do not create the peer if it does not exist
	PresharedKey        *noise.PresharedKey
	Endpoint            *netip.AddrPort
	PersistentKeepalive *time.Duration
	// AllowedIPs are the allowed_ip and replace_allowed_ips lines, in
	// request order, which is the order they apply in.
	AllowedIPs []AllowedIPOp
}

// AllowedIPOp is one allowed-IP line of a peer block.
type AllowedIPOp struct {
	// ReplaceAll (replace_allowed_ips=true) removes all of the peer's
	// allowed IPs; Prefix is then zero.
	ReplaceAll bool
	// Remove (allowed_ip=-PREFIX) removes Prefix if the peer has it;
	// otherwise (allowed_ip=PREFIX) Prefix goes to the peer, taken from
	// any other peer that had it.
	Remove bool
	Prefix netip.Prefix // masked
}

// readLine reads one line without its newline. A line longer than maxLine
// is a protocol error.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLine:
		return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
	case err != nil:
		return "", err
	}
	return string(line[:len(line)-1]), nil
}

// ParseSet reads the body of a set operation, up to and including the
// blank line that ends it.
func ParseSet(r *bufio.Reader) (*SetRequest, error) {
	req := &SetRequest{}
	var peer *PeerChange
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if line == "" {
			return req, nil
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			// Not quoted: it may be a key that lost its name.
			return nil, fmt.Errorf("%w: a line of %d bytes is not key=value", ErrProtocol, len(line))
		}
		if key == "public_key" {
			pk, err := parseHexKey(key, value)
			if err != nil {
				return nil, err
			}
			req.Peers = append(req.Peers, PeerChange{PublicKey: noise.PublicKey(pk)})
			peer = &req.Peers[len(req.Peers)-1]
			continue
		}
		if peer == nil {
			err = req.deviceLine(key, value)
		} else {
			err = peer.line(key, value)
		}
		if err != nil {
			return nil, err
		}
	}
}

func (req *SetRequest) deviceLine(key, value string) error {
	switch key {
	case "private_key":
		k, err := parseHexKey(key, value)
		if err != nil {
			return err
		}
		pk := noise.PrivateKey(k)
		req.PrivateKey = &pk
	case "listen_port":
		n, err := strconv.ParseUint(value, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: listen_port %q", ErrInvalid, value)
		}
		port := uint16(n)
		req.ListenPort = &port
	case "fwmark":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return fmt.Errorf("%w: fwmark %q", ErrInvalid, value)
		}
		mark := uint32(n)
		req.FwMark = &mark
	case "replace_peers":
		if value != "true" {
			return fmt.Errorf("%w: replace_peers=%q", ErrInvalid, value)
		}
		req.ReplacePeers = true
	default:
		return fmt.Errorf("%w: device key %s", ErrInvalid, quoteKey(key))
	}
	return nil
}

func (pc *PeerChange) line(key, value string) error {
	switch key {
	case "update_only", "remove", "replace_allowed_ips":
		if value != "true" {
			return fmt.Errorf("%w: %s=%q", ErrInvalid, key, value)
		}
		switch key {
		case "update_only":
			pc.UpdateOnly = true
		case "remove":
			pc.Remove = true
		default:
			pc.AllowedIPs = append(pc.AllowedIPs, AllowedIPOp{ReplaceAll: true})
		}
	case "preshared_key":
		k, err := parseHexKey(key, value)
		if err != nil {
			return err
		}
		psk := noise.PresharedKey(k)
		pc.PresharedKey = &psk
	case "endpoint":
		// wg(8) resolves names itself and sends an address; so does
		// wireguard-go's parser accept only addresses.
		ap, err := netip.ParseAddrPort(value)
		if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
			return fmt.Errorf("%w: endpoint %q", ErrInvalid, value)
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		pc.Endpoint = &ap
	case "persistent_keepalive_interval":
		n, err := strconv.ParseUint(value, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: persistent_keepalive_interval %q", ErrInvalid, value)
		}
		d := time.Duration(n) * time.Second
		pc.PersistentKeepalive = &d
	case "allowed_ip":
		remove := strings.HasPrefix(value, "-")
		pfx, err := netip.ParsePrefix(strings.TrimPrefix(value, "-"))
		if err != nil {
			return fmt.Errorf("%w: allowed_ip %q", ErrInvalid, value)
		}
		pc.AllowedIPs = append(pc.AllowedIPs, AllowedIPOp{Remove: remove, Prefix: pfx.Masked()})
	case "protocol_version":
		if value != "1" {
			return fmt.Errorf("%w: protocol_version %q", ErrInvalid, value)
		}
	default:
		return fmt.Errorf("%w: peer key %s", ErrInvalid, quoteKey(key))
	}
	return nil
}

// quoteKey quotes an unknown key's name for the log, unless it is no
// name (lower case letters and '_', as long as the protocol's longest)
// and may be part of a key.
func quoteKey(key string) string {
	if len(key) > len("persistent_keepalive_interval") || strings.Trim(key, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return fmt.Sprintf("(%d bytes, not shown: not a key name)", len(key))
	}
	return strconv.Quote(key)
}

// parseHexKey parses the 64 hex digits of a key, as the protocol writes
// keys (not base64).
func parseHexKey(name, value string) ([32]byte, error) {
	var k [32]byte
	if len(value) != 64 {
		return k, fmt.Errorf("%w: %s is not 64 hex digits", ErrInvalid, name)
	}
	if _, err := hex.Decode(k[:], []byte(value)); err != nil {
		return k, fmt.Errorf("%w: %s is not 64 hex digits", ErrInvalid, name)
	}
	return k, nil
}
