package e2e

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bulk is the size of each TCP transfer, as the issue asks: 50 MB each
// way.
const bulk = 50 << 20

// trafficBothWays pings a → b and b → a over IPv4 and IPv6, then sends
// bulk TCP each way, checksummed.
func trafficBothWays(t *testing.T, a, b *node) {
	t.Helper()
	a.ping(t, b.inner[0].Addr())
	b.ping(t, a.inner[0].Addr())
	a.ping(t, b.inner[1].Addr())
	b.ping(t, a.inner[1].Addr())
	transfer(t, a, b, bulk, nil)
	transfer(t, b, a, bulk, nil)
}

// stopAndCheck stops the client with SIGTERM and checks the issue's
// promise: exit 0 within 2 s, nothing left behind.
func stopAndCheck(t *testing.T, p *proc, n *node) {
	t.Helper()
	code, took := p.stop(t, syscall.SIGTERM, 2*time.Second)
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM", p.name, code)
	}
	t.Logf("%s stopped in %v", p.name, took.Round(time.Millisecond))
	assertGone(t, n)
}

// TestPipeGuardPair runs two clients, for each engine: ping both ways,
// 50 MB of TCP each way, `wg show` against the socket, and an orderly
// SIGTERM that leaves nothing behind.
func TestPipeGuardPair(t *testing.T) {
	b := binaries(t)
	for _, engine := range []string{"pipeline", "sequential"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a, z := peeredNodes(t)
			pa := a.startClient(t, b, "--engine", engine, "--workers", "2")
			pz := z.startClient(t, b, "--engine", engine, "--workers", "2", "--queue-capacity", "256")
			if !strings.Contains(pa.out.String(), "engine="+engine) {
				t.Errorf("client does not log engine=%s:\n%s", engine, pa.out)
			}
			trafficBothWays(t, a, z)

			show := wg(t, "show", a.iface)
			for _, want := range []string{"peer: " + z.key.Public().String(), "endpoint: " + z.outer.String() + ":51820", "latest handshake:", "transfer:"} {
				if !strings.Contains(show, want) {
					t.Errorf("wg show lacks %q:\n%s", want, show)
				}
			}
			fields := strings.Fields(wg(t, "show", a.iface, "transfer"))
			if len(fields) != 3 || fields[0] != z.key.Public().String() {
				t.Fatalf("wg show transfer: %q", fields)
			}
			rx, _ := strconv.ParseUint(fields[1], 10, 64)
			tx, _ := strconv.ParseUint(fields[2], 10, 64)
			if rx < bulk || tx < bulk {
				t.Errorf("wg show transfer: rx %d tx %d, want each over %d after the transfers", rx, tx, bulk)
			}
			stopAndCheck(t, pa, a)
			stopAndCheck(t, pz, z)
		})
	}
}

// TestWireguardGoInterop runs the client against wireguard-go (cmd/wgpeer)
// with the client as the handshake's initiator and as its responder:
// whoever sends first initiates, and neither side has a keepalive that
// would start one early.
func TestWireguardGoInterop(t *testing.T) {
	b := binaries(t)
	for _, role := range []string{"initiator", "responder"} {
		t.Run("pipeguard_"+role, func(t *testing.T) {
			t.Parallel()
			pg, wgo := peeredNodes(t)
			ppg := pg.startClient(t, b)
			pwg := wgo.startWGPeer(t, b)
			if role == "initiator" {
				pg.ping(t, wgo.inner[0].Addr())
			} else {
				wgo.ping(t, pg.inner[0].Addr())
			}
			// The client logs its side of the handshake at debug level.
			want := map[string]string{"initiator": "role=initiator", "responder": "handshake answered"}[role]
			if log := ppg.out.String(); !strings.Contains(log, want) {
				t.Errorf("client log lacks %q, so it was not the %s:\n%s", want, role, log)
			}
			trafficBothWays(t, pg, wgo)
			// wg show works on both, and each sees the other's traffic.
			for _, n := range []*node{pg, wgo} {
				if show := wg(t, "show", n.iface); !strings.Contains(show, "latest handshake:") || !strings.Contains(show, "MiB received") {
					t.Errorf("wg show %s:\n%s", n.iface, show)
				}
			}
			stopAndCheck(t, ppg, pg)
			if code, _ := pwg.stop(t, syscall.SIGTERM, 3*time.Second); code != 0 {
				t.Errorf("wgpeer exited %d after SIGTERM", code)
			}
			assertGone(t, wgo)
		})
	}
}
