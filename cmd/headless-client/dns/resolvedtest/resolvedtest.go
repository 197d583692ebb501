// Package resolvedtest is a fake systemd-resolved for tests: a private
// D-Bus daemon (dbus-daemon(1), Debian's dbus-daemon package) with a
// service that owns org.freedesktop.resolve1 and records every call to
// its Manager's link methods, with the D-Bus signature it arrived with.
// A test checks the exact calls the client makes, over a real bus, where
// no live resolved can run (it needs systemd as PID 1).
//
// The methods and signatures are those of org.freedesktop.resolve1(5):
// SetLinkDNS ia(iay), SetLinkDomains ia(sb), SetLinkDefaultRoute ib,
// RevertLink i. A call with another signature or name fails, as it would
// against resolved.
package resolvedtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
)

// Bus is a private D-Bus daemon, stopped in t.Cleanup.
type Bus struct {
	// Address is the bus's D-Bus address (unix:path=…); a process finds
	// it as its system bus with DBUS_SYSTEM_BUS_ADDRESS set to it.
	Address string
}

// busConfig lets every local process connect, own names and send
// anything: the bus is the test's alone.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`

// NewBus starts a private bus. It fails the test if dbus-daemon is
// missing (scripts/setup.sh installs it).
func NewBus(t testing.TB) *Bus {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("resolvedtest: no dbus-daemon (apt install dbus-daemon; scripts/setup.sh does): %v", err)
	}
	// A short directory: a unix socket path has room for 107 bytes.
	dir, err := os.MkdirTemp("", "pgbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, busConfig, filepath.Join(dir, "bus")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+cfg, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Its complaints (it cannot raise its fd limit in a container) are
	// shown only if the test fails.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("resolvedtest: dbus-daemon printed no address: %v", err)
	}
	return &Bus{Address: strings.TrimSpace(line)}
}

// Dial connects to the bus; it has the shape of dbus.ConnectSystemBus.
func (b *Bus) Dial(opts ...dbus.ConnOption) (*dbus.Conn, error) {
	return dbus.Connect(b.Address, opts...)
}

// Env is the environment entry that makes the bus a process's system bus.
func (b *Bus) Env() string { return "DBUS_SYSTEM_BUS_ADDRESS=" + b.Address }

// Fake is the fake resolved on its bus.
type Fake struct {
	*Bus
	m *manager
}

// Start starts a bus with a fake resolved on it.
func Start(t testing.TB) *Fake {
	t.Helper()
	b := NewBus(t)
	conn, err := b.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m := &manager{}
	if err := conn.Export(m, "/org/freedesktop/resolve1", "org.freedesktop.resolve1.Manager"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.resolve1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("resolvedtest: owning org.freedesktop.resolve1: %v (reply %d)", err, reply)
	}
	return &Fake{Bus: b, m: m}
}

// Calls returns the calls so far, one string each, such as
// "SetLinkDNS ia(iay) 7 [(2 10.0.0.1) (10 fd00::1)]".
func (f *Fake) Calls() []string {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return append([]string(nil), f.m.calls...)
}

// manager is the exported org.freedesktop.resolve1.Manager.
type manager struct {
	mu    sync.Mutex // guards calls
	calls []string
}

// DNSServer and Domain are resolved's (iay) and (sb).
type (
	DNSServer struct {
		Family  int32
		Address []byte
	}
	Domain struct {
		Domain      string
		RoutingOnly bool
	}
)

// signatures are resolved's, which it (sd-bus) enforces exactly; godbus
// alone would convert a u into an i.
var signatures = map[string]string{
	"SetLinkDNS":          "ia(iay)",
	"SetLinkDomains":      "ia(sb)",
	"SetLinkDefaultRoute": "ib",
	"RevertLink":          "i",
}

func (m *manager) record(msg dbus.Message, method, args string) *dbus.Error {
	sig, _ := msg.Headers[dbus.FieldSignature].Value().(dbus.Signature)
	if sig.String() != signatures[method] {
		return dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{method + ": signature " + sig.String() + ", want " + signatures[method]})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, method+" "+sig.String()+" "+args)
	return nil
}

func (m *manager) SetLinkDNS(msg dbus.Message, ifindex int32, servers []DNSServer) *dbus.Error {
	var parts []string
	for _, s := range servers {
		a, _ := netip.AddrFromSlice(s.Address)
		parts = append(parts, fmt.Sprintf("(%d %s)", s.Family, a))
	}
	return m.record(msg, "SetLinkDNS", fmt.Sprintf("%d [%s]", ifindex, strings.Join(parts, " ")))
}

func (m *manager) SetLinkDomains(msg dbus.Message, ifindex int32, domains []Domain) *dbus.Error {
	var parts []string
	for _, d := range domains {
		parts = append(parts, fmt.Sprintf("(%s %t)", d.Domain, d.RoutingOnly))
	}
	return m.record(msg, "SetLinkDomains", fmt.Sprintf("%d [%s]", ifindex, strings.Join(parts, " ")))
}

func (m *manager) SetLinkDefaultRoute(msg dbus.Message, ifindex int32, enable bool) *dbus.Error {
	return m.record(msg, "SetLinkDefaultRoute", fmt.Sprintf("%d %t", ifindex, enable))
}

func (m *manager) RevertLink(msg dbus.Message, ifindex int32) *dbus.Error {
	return m.record(msg, "RevertLink", fmt.Sprint(ifindex))
}
