package config

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Load reads and parses the config file at path, after checking that only
// its owner can read or write it and that the owner is the user running
// (the effective uid): the file holds the private key, and a key that
// others could read, or that another user could change, is a key to
// refuse, as ssh does with an identity file. The directory that holds it
// (and, for a link, the one that holds its target) must be one no other
// user can change (see checkDir): otherwise that user could swap the
// file for a link to another of root's files.
func Load(path string) (*Config, error) {
	if err := checkDir(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := checkFile(path, fi, os.Geteuid()); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return Parse(path, data)
}

// checkFile is Load's mode and owner check, apart for tests.
func checkFile(path string, fi os.FileInfo, euid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBadValue, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; it holds the private key: chmod 600 %s", ErrPermissions, path, perm, path)
	}
	uid, err := fileOwner(fi)
	if err != nil {
		return err
	}
	if uid != euid {
		return fmt.Errorf("%w: %s belongs to uid %d, but this process runs as uid %d: chown %d %s", ErrOwner, path, uid, euid, euid, path)
	}
	return nil
}

// InterfaceName derives the interface name from the config file's name,
// as wg-quick does: /etc/pipeguard/pg0.conf names pg0.
func InterfaceName(path string) (string, error) {
	name := strings.TrimSuffix(filepath.Base(path), ".conf")
	if err := CheckInterfaceName(name); err != nil {
		return "", fmt.Errorf("%w (from the file name %s; use --interface)", err, filepath.Base(path))
	}
	return name, nil
}

// CheckInterfaceName accepts what wg-quick accepts: 1 to 15 characters of
// letters, digits and _=+.- (Linux's IFNAMSIZ less the NUL).
func CheckInterfaceName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("%w: %s must have 1 to 15 characters", ErrBadInterface, quote(name))
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_=+.-", c) >= 0) {
			return fmt.Errorf("%w: %s may hold only letters, digits and _=+.-", ErrBadInterface, quote(name))
		}
	}
	return nil
}

// Resolver looks up a host name's addresses; net.DefaultResolver's
// LookupNetIP fits, and tests pass a table.
type Resolver func(ctx context.Context, network, host string) ([]netip.Addr, error)

// ResolveEndpoint turns the peer's Endpoint into an address, looking host
// names up with lookup. An endpoint that resolves to both families prefers
// IPv4, as wg(8) does. A peer without an Endpoint gives the zero AddrPort.
// Errors name the file and line of the Endpoint.
func (pe *Peer) ResolveEndpoint(ctx context.Context, lookup Resolver) (netip.AddrPort, error) {
	if pe.Endpoint == "" {
		return netip.AddrPort{}, nil
	}
	fail := func(err error) error { return &LineError{File: pe.File, Line: pe.EndpointLine, Err: err} }
	host, portStr, err := net.SplitHostPort(pe.Endpoint)
	if err != nil {
		return netip.AddrPort{}, fail(fmt.Errorf("%w: %s", ErrBadEndpoint, quote(pe.Endpoint)))
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fail(fmt.Errorf("%w: %s", ErrBadEndpoint, quote(pe.Endpoint)))
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	addrs, err := lookup(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fail(fmt.Errorf("%w: cannot resolve %s: %v", ErrBadEndpoint, host, err))
	}
	var pick netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			pick = a
			break
		}
		if !pick.IsValid() {
			pick = a
		}
	}
	if !pick.IsValid() {
		return netip.AddrPort{}, fail(fmt.Errorf("%w: %s has no addresses", ErrBadEndpoint, host))
	}
	return netip.AddrPortFrom(pick, uint16(port)), nil
}
