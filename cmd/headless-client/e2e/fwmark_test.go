package e2e

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// TestFullTunnelFwMarkChange: `wg set IFACE fwmark X` in a full tunnel
// would leave the policy rule on the old mark, and the tunnel's own UDP
// would be routed into the tunnel itself. The real wg's set is refused
// with EINVAL (wg says "Invalid argument") and one log line, the mark
// stays, and the tunnel keeps carrying traffic; setting the mark it has
// is fine.
func TestFullTunnelFwMarkChange(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := newNodes(t)
	giveFarAddresses(t, z.ns)
	a.writeConfig(t, fullTunnelPeer(z))
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)
	pa := a.startClientIn(t, b, t.TempDir())
	if out, ok := pingOut(a.ns, farV4); !ok {
		t.Fatalf("ping %s through the full tunnel:\n%s", farV4, out)
	}
	for _, mark := range []string{"0x1", "off"} {
		out, err := exec.Command("wg", "set", a.iface, "fwmark", mark).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Invalid argument") {
			t.Errorf("wg set fwmark %s: %v, want Invalid argument:\n%s", mark, err, out)
		}
		if got := strings.TrimSpace(wg(t, "show", a.iface, "fwmark")); got != "0xca6c" {
			t.Errorf("after wg set fwmark %s, the mark is %q, want 0xca6c", mark, got)
		}
	}
	if n := strings.Count(pa.out.String(), "fwmark 0x1 refused: the full tunnel's policy rules"); n != 1 {
		t.Errorf("%d log lines for the refused mark, want 1:\n%s", n, pa.out)
	}
	wg(t, "set", a.iface, "fwmark", "0xca6c") // the mark it has
	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(a.ns, dst); !ok {
			t.Errorf("ping %s after the refused marks:\n%s", dst, out)
		}
	}
	stopAndCheck(t, pa, a)
}
