// Package netns makes and removes named Linux network namespaces and veth
// pairs with iproute2 (`ip netns`), and runs commands or Go code inside
// them. The demo uses it to show a tunnel without touching the host's
// network; tests use it through netnstest, which adds cleanup.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// ErrIP is wrapped by every failure of an `ip` command.
var ErrIP = errors.New("netns: ip command failed")

// NS is one named network namespace.
type NS struct {
	Name string
}

// Create adds the namespace name and brings its loopback up.
func Create(name string) (*NS, error) {
	if err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name}
	if out, err := ns.Run("ip", "link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, fmt.Errorf("%w: lo up in %s: %v: %s", ErrIP, name, err, out)
	}
	return ns, nil
}

// Delete removes the namespace; the kernel removes its interfaces (and
// so the far end of its veth pairs) with it once no process is left in it.
func (ns *NS) Delete() error { return ip("netns", "del", ns.Name) }

// Command returns a command that runs name with args inside the
// namespace (through `ip netns exec`).
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	out, err := ns.Command(context.Background(), name, args...).CombinedOutput()
	return string(out), err
}

// Link joins a and b with the veth pair ifA-ifB, gives each end its
// address (a prefix such as 10.99.0.1/24, without duplicate address
// detection, so IPv6 works at once) and brings both up.
func Link(a, b *NS, ifA, ifB string, addrA, addrB netip.Prefix) error {
	if err := ip("link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name); err != nil {
		return err
	}
	for _, end := range []struct {
		ns   *NS
		name string
		addr netip.Prefix
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		for _, args := range [][]string{
			{"ip", "addr", "add", end.addr.String(), "dev", end.name, "nodad"},
			{"ip", "link", "set", end.name, "up"},
		} {
			if out, err := end.ns.Run(args[0], args[1:]...); err != nil {
				return fmt.Errorf("%w: in %s: %s: %v: %s", ErrIP, end.ns.Name, strings.Join(args, " "), err, out)
			}
		}
	}
	return nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip %s: %v: %s", ErrIP, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
