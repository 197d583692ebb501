package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Default routes of each family, for AllowedIPs.
var (
	allV4 = netip.MustParsePrefix("0.0.0.0/0")
	allV6 = netip.MustParsePrefix("::/0")
)

// TestUntunneledFamilyWarned: a config that tunnels all of IPv4 but not
// IPv6, on a host with IPv6 routes, gets one warning naming IPv6 at
// start, and --check says so; without --block-untunneled, IPv6 does go
// around the tunnel in cleartext (the capture sees it), while IPv4 does
// not.
func TestUntunneledFamilyWarned(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	l := newLeakLab(t, b, allV4)
	code, stdout, stderr := runOnce(t, b, l.a, nil, "standalone", "--check", "--config", l.a.conf, "--interface", l.a.iface, "--state-dir", l.state)
	if code != 0 || !strings.Contains(stdout, "warning: IPv6 bypasses the tunnel (AllowedIPs has 0.0.0.0/0, not the other family, and the host has IPv6 routes: fd99::/64 dev "+l.veth) {
		t.Errorf("--check: exit %d:\n%s%s", code, stdout, stderr)
	}
	p := l.startClient(t, b)
	const warning = "IPv6 traffic bypasses the tunnel and leaves unencrypted: AllowedIPs has 0.0.0.0/0 but not ::/0"
	if n := strings.Count(p.out.String(), warning); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, p.out)
	}
	if out, ok := pingOut(l.a.ns, farV4); !ok {
		t.Fatalf("ping %s through the tunnel:\n%s", farV4, out)
	}
	for _, tc := range []struct {
		dst   netip.Addr
		leaks bool
	}{{farV4, false}, {farV6, true}} {
		c := l.capture(t)
		tr := startTraffic(t, l.a.ns, []netip.Addr{tc.dst}, trafficEvery, nil)
		time.Sleep(time.Second)
		tr.finish(t)
		res, err := c.Close()
		if err != nil {
			t.Error(err)
		}
		if got := res.Leaked > 0; got != tc.leaks {
			t.Errorf("traffic to %s: %d of %d frames leaked, want leaks: %v; %v", tc.dst, res.Leaked, res.Sent, tc.leaks, res.Examples)
		}
	}
	stopAndCheck(t, p, l.a)
}
