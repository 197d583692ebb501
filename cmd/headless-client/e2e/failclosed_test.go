package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leakCase is one way a full tunnel can lose its device or its process,
// acted out while the client's namespace keeps sending; the capture on
// its veth must count no cleartext.
type leakCase struct {
	name    string
	allowed []netip.Prefix
	flags   []string
	// fresh: the case is a first start; capture and traffic run from
	// before it, the traffic sending only once the interface exists.
	fresh bool
	// act runs with the client up (p; nil if fresh) and the traffic
	// flowing, and returns when the case is over, with the client that
	// runs then, if any: it is stopped after the capture (an explicit
	// stop restores normal routing, so traffic would leave then).
	act func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc
}

// leakWindow is how long a case lets traffic run against a tunnel that
// lost its device or process: 2 s, about what a link bounce or a
// restart by systemd takes.
const leakWindow = 2 * time.Second

// startPause is the traffic's pause between rounds during a start: short,
// so that a window of a millisecond would be hit.
const startPause = 200 * time.Microsecond

// TestFullTunnelLeaks runs each way a full tunnel can lose its device or
// its process with a capture on the client's outer interface: none may
// let a packet out in cleartext. A leak is any frame the veth sends that
// is not ARP, not IPv6 link-local control, not WireGuard to the peer and
// not the kernel's port unreachable for the peer's WireGuard while no
// client listens.
func TestFullTunnelLeaks(t *testing.T) {
	b := binaries(t)
	both := []netip.Prefix{allV4, allV6}
	for _, tc := range []leakCase{
		{name: "steady state", allowed: both, act: func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc {
			before := tr.replies.Load()
			time.Sleep(leakWindow)
			if tr.replies.Load() == before {
				t.Errorf("no ping replies through the tunnel in %v", leakWindow)
			}
			return p
		}},
		{name: "SIGKILL", allowed: both, act: func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc {
			l.kill(t, p)
			time.Sleep(leakWindow)
			return nil
		}},
		{name: "link down", allowed: both, act: func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc {
			l.a.ns.MustRun(t, "ip", "link", "set", l.a.iface, "down")
			time.Sleep(leakWindow)
			l.a.ns.MustRun(t, "ip", "link", "set", l.a.iface, "up")
			// Routes come back; so do the replies.
			before := tr.replies.Load()
			pollUntil(t, 15*time.Second, "ping replies after the link came back", func() bool { return tr.replies.Load() > before })
			return p
		}},
		{name: "link deleted", allowed: both, act: func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc {
			l.a.ns.MustRun(t, "ip", "link", "del", l.a.iface)
			if code := waitExit(t, p, 10*time.Second); code != 1 {
				t.Errorf("exit %d after the interface was deleted, want 1 (so that systemd restarts it)", code)
			}
			time.Sleep(leakWindow)
			// systemd's restart takes over.
			p2 := l.startClient(t, b)
			before := tr.replies.Load()
			pollUntil(t, 15*time.Second, "ping replies after the restart", func() bool { return tr.replies.Load() > before })
			return p2
		}},
		{name: "restart after SIGKILL", allowed: both, act: func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc {
			// What systemd does after a crash: start again at once. The
			// start must not open a window.
			l.kill(t, p)
			p2 := l.startClient(t, b)
			before := tr.replies.Load()
			pollUntil(t, 15*time.Second, "ping replies after the restart", func() bool { return tr.replies.Load() > before })
			time.Sleep(time.Second)
			return p2
		}},
		{name: "first second of a start", allowed: both, fresh: true, act: func(t *testing.T, b bins, l *leakLab, _ *proc, tr *traffic) *proc {
			p := l.startClient(t, b)
			time.Sleep(time.Second)
			return p
		}},
		{name: "IPv4 only, --block-untunneled", allowed: []netip.Prefix{allV4}, flags: []string{"--block-untunneled"},
			act: func(t *testing.T, b bins, l *leakLab, p *proc, tr *traffic) *proc {
				time.Sleep(leakWindow)
				l.kill(t, p) // IPv4 fails closed too
				time.Sleep(time.Second)
				return nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runLeakCase(t, b, tc)
		})
	}
}

// runLeakCase sets up a lab, starts the client (unless the case is a
// fresh start), checks the tunnel carries traffic, then captures while
// the case acts and the traffic flows. The client still running after
// it is stopped, which must restore the routing as it was.
func runLeakCase(t *testing.T, b bins, tc leakCase) {
	l := newLeakLab(t, b, tc.allowed...)
	dsts := []netip.Addr{farV4, farV6}
	var p *proc
	pause, when := trafficEvery, func() bool { return true }
	if tc.fresh {
		pause, when = startPause, interfaceExists(l.a.iface)
	} else {
		p = l.startClient(t, b, tc.flags...)
		if out, ok := pingOut(l.a.ns, farV4); !ok {
			t.Fatalf("ping %s through the tunnel:\n%s\n%s", farV4, out, policyState(t, l.a.ns))
		}
	}
	c := l.capture(t)
	tr := startTraffic(t, l.a.ns, dsts, pause, when)
	last := tc.act(t, b, l, p, tr)
	tr.finish(t)
	assertNoLeak(t, c, tc.name)
	if tr.sent.Load()+tr.refused.Load() == 0 {
		t.Errorf("no traffic was sent at all: the case proves nothing")
	}
	if last != nil {
		stopAndCheck(t, last, l.a)
		if got := policyState(t, l.a.ns); got != l.before {
			t.Errorf("after SIGTERM, the routing is not as it was:\n%s\nwant\n%s", got, l.before)
		}
	}
}

// TestStopRestoresRouting: SIGTERM, the explicit stop, takes the full
// tunnel's rules and unreachable routes away, so traffic leaves by the
// main table again; after a SIGKILL it is dropped until `cleanup`
// restores the routing, and `cleanup` refuses while a client serves the
// interface.
func TestStopRestoresRouting(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	l := newLeakLab(t, b, allV4, allV6)
	p := l.startClient(t, b)
	if got := policyState(t, l.a.ns); strings.Count(got, "unreachable default") != 2 {
		t.Errorf("the unreachable routes are missing:\n%s", got)
	}
	cleanup := func() (int, string) {
		code, stdout, stderr := runOnce(t, b, l.a, nil, "cleanup", "--state-dir", l.state, l.a.iface)
		return code, stdout + stderr
	}
	if code, out := cleanup(); code != 1 || !strings.Contains(out, "interface "+l.a.iface+" exists, so a client serves it") {
		t.Errorf("cleanup of a running tunnel: exit %d:\n%s", code, out)
	}
	stopAndCheck(t, p, l.a)
	if got := policyState(t, l.a.ns); got != l.before {
		t.Errorf("after SIGTERM:\n%s\nwant\n%s", got, l.before)
	}
	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(l.a.ns, dst); !ok {
			t.Errorf("ping %s by the main table after SIGTERM:\n%s", dst, out)
		}
	}

	p = l.startClient(t, b)
	l.kill(t, p)
	if out, ok := pingOut(l.a.ns, farV4, "-c", "1", "-w", "1"); ok {
		t.Errorf("ping %s passed after SIGKILL (fail closed):\n%s", farV4, out)
	}
	code, out := cleanup()
	if code != 0 || !strings.Contains(out, "removed ") || !strings.Contains(out, "ip -6 route unreachable default table 51820") {
		t.Errorf("cleanup after SIGKILL: exit %d:\n%s", code, out)
	}
	if got := policyState(t, l.a.ns); got != l.before {
		t.Errorf("after cleanup:\n%s\nwant\n%s", got, l.before)
	}
	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(l.a.ns, dst); !ok {
			t.Errorf("ping %s by the main table after cleanup:\n%s", dst, out)
		}
	}
	if code, out := cleanup(); code != 0 || !strings.Contains(out, "nothing to clean up") {
		t.Errorf("cleanup again: exit %d:\n%s", code, out)
	}
	// The service's state belongs to its user: root's cleanup does not
	// read it as root, but runs again as that user, with CAP_NET_ADMIN.
	p = l.startClient(t, b)
	l.kill(t, p)
	const serviceUID = "64000"
	for _, d := range []string{filepath.Dir(l.state), l.state} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", serviceUID+":"+serviceUID, l.state).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	if code, out := cleanup(); code != 0 || !strings.Contains(out, "removed ") || policyState(t, l.a.ns) != l.before {
		t.Errorf("root's cleanup of another user's state: exit %d:\n%s\n%s", code, out, policyState(t, l.a.ns))
	}
	if out, err := exec.Command("chown", "-R", "0:0", l.state).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	// As the unit's ExecStopPost after a crash: kept for the restart.
	p = l.startClient(t, b)
	l.kill(t, p)
	code, stdout, stderr := runOnce(t, b, l.a, []string{"SERVICE_RESULT=signal"}, "cleanup", "--keep-after-crash", "--state-dir", l.state, l.a.iface)
	if code != 0 || !strings.Contains(stderr, "stays failed closed") || strings.Count(policyState(t, l.a.ns), "unreachable default") != 2 {
		t.Errorf("ExecStopPost after a crash: exit %d:\n%s%s\n%s", code, stdout, stderr, policyState(t, l.a.ns))
	}
	// And after a stop that timed out: restored.
	code, stdout, stderr = runOnce(t, b, l.a, []string{"SERVICE_RESULT=timeout"}, "cleanup", "--keep-after-crash", "--state-dir", l.state, l.a.iface)
	if code != 0 || policyState(t, l.a.ns) != l.before {
		t.Errorf("ExecStopPost after a stop: exit %d:\n%s%s\n%s", code, stdout, stderr, policyState(t, l.a.ns))
	}
}

// TestFailOpenLeaks: with --fail-open the full tunnel behaves as
// wg-quick's: after a SIGKILL its traffic leaves by the main table, in
// cleartext (which the capture sees: the lab can show a leak).
func TestFailOpenLeaks(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	l := newLeakLab(t, b, allV4, allV6)
	p := l.startClient(t, b, "--fail-open")
	if got := policyState(t, l.a.ns); strings.Contains(got, "unreachable") {
		t.Errorf("--fail-open added unreachable routes:\n%s", got)
	}
	c := l.capture(t)
	tr := startTraffic(t, l.a.ns, []netip.Addr{farV4, farV6}, trafficEvery, nil)
	l.kill(t, p)
	time.Sleep(time.Second)
	tr.finish(t)
	res, err := c.Close()
	if err != nil {
		t.Error(err)
	}
	t.Logf("--fail-open, SIGKILL: %d of %d frames leaked", res.Leaked, res.Sent)
	if res.Leaked == 0 {
		t.Errorf("nothing leaked with --fail-open after SIGKILL; the lab may not see leaks")
	}
}
