package e2e

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/cmd/internal/tcpcheck"
	"pipeguard/noise"
)

// Restarts and roaming, end to end: a peer that dies and comes back with
// the same key, PipeGuard killed outright and started again, and a peer
// whose address changes under a running transfer. Each runs against
// wireguard-go (cmd/wgpeer) and against PipeGuard itself; the node under
// watch is always a PipeGuard client.

// Peer kinds: the program at the far end of a test.
const (
	kindWireguardGo = "wireguard-go"
	kindPipeGuard   = "pipeguard"
)

var peerKinds = []string{kindWireguardGo, kindPipeGuard}

// startPeer runs kind's program for n and waits until it is up.
func (n *node) startPeer(t *testing.T, b bins, kind string) *proc {
	t.Helper()
	if kind == kindWireguardGo {
		return n.startWGPeer(t, b)
	}
	return n.startClient(t, b)
}

// startWithPeer starts the client for a and kind's program for z, and
// pings each way, so that both have a session.
func startWithPeer(t *testing.T, b bins, a, z *node, kind string) (pa, pz *proc) {
	t.Helper()
	pa = a.startClient(t, b)
	pz = z.startPeer(t, b, kind)
	a.ping(t, z.inner[0].Addr())
	z.ping(t, a.inner[0].Addr())
	return pa, pz
}

// kill ends p with SIGKILL, as a crash or the OOM killer would: nothing of
// its own shutdown runs.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if code, _ := p.stop(t, syscall.SIGKILL, 5*time.Second); code == 0 {
		t.Fatalf("%s exited 0 after SIGKILL", p.name)
	}
}

// pingWithin pings dst from n every 200 ms until the first reply, for at
// most within (ping's -w); it fails the test if no reply comes, and
// returns how long the first reply took.
func (n *node) pingWithin(t *testing.T, dst netip.Addr, within time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	out, err := n.ns.Run("ping", "-c", "1", "-i", "0.2", "-w", strconv.Itoa(int(within/time.Second)), dst.String())
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("no ping reply from %s to %s within %v: %v\n%s", n.ns.Name, dst, within, err, out)
	}
	return took
}

func unixSeconds(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("handshake time %q: %v", s, err)
	}
	return v
}

// trafficResumes checks that the tunnel carries traffic both ways again:
// ping each way, and a checksummed TCP transfer each way.
func trafficResumes(t *testing.T, a, z *node) {
	t.Helper()
	a.ping(t, z.inner[0].Addr())
	z.ping(t, a.inner[0].Addr())
	transfer(t, a, z, 5<<20, nil)
	transfer(t, z, a, 5<<20, nil)
}

// TestPeerRestart kills the peer with SIGKILL while PipeGuard holds a
// session with it, and starts it again with the same config (same key,
// same port). The restarted peer has no session.
//
// When the restarted peer sends (peer_sends), it starts a handshake at
// once: its first packet must get through, a new handshake done, within
// Rekey-Timeout (5 s).
//
// When only PipeGuard sends (pipeguard_sends), its packets go out on a
// session the peer no longer has, and are dropped unseen; WireGuard's
// rule (whitepaper §6.2) is that a peer which sent data and heard nothing
// for Keepalive-Timeout + Rekey-Timeout (15 s) starts a new handshake. The
// first reply must come within that (plus the timer's jitter and a
// margin).
//
// Either way, traffic then resumes both ways.
func TestPeerRestart(t *testing.T) {
	b := binaries(t)
	for _, kind := range peerKinds {
		for _, sender := range []string{"peer_sends", "pipeguard_sends"} {
			t.Run(kind+"/"+sender, func(t *testing.T) {
				t.Parallel()
				a, z := peeredNodes(t)
				pa := a.startClient(t, b)
				pz := z.startPeer(t, b, kind)
				// The peer starts the first handshake, so that PipeGuard,
				// its responder, has no retry of its own pending: an
				// initiator re-arms its retry timer after the send, and a
				// response that beats it leaves a retry 5 s later, which
				// would make pipeguard_sends pass without the 15 s rule.
				z.ping(t, a.inner[0].Addr())
				before := handshakeOf(t, a, z)
				// PipeGuard logs each handshake at debug level, by role.
				const initiated, answered = "role=initiator", "handshake answered"
				logged := func(what string) int { return strings.Count(pa.out.String(), what) }
				wasInitiated, wasAnswered := logged(initiated), logged(answered)
				// loggedMore waits for a new line of what: the client logs
				// after it sent the message, and the line reaches pa.out
				// through a pipe, so a ping reply can arrive before it.
				loggedMore := func(what string, was int) bool {
					for deadline := time.Now().Add(2 * time.Second); logged(what) == was; {
						if time.Now().After(deadline) {
							return false
						}
						time.Sleep(10 * time.Millisecond)
					}
					return true
				}

				pz.kill(t)
				pz = z.startPeer(t, b, kind)
				if sender == "peer_sends" {
					took := z.pingWithin(t, a.inner[0].Addr(), noise.RekeyTimeout)
					t.Logf("first reply to the restarted peer after %v", took.Round(time.Millisecond))
					if !loggedMore(answered, wasAnswered) {
						t.Errorf("PipeGuard did not log answering the restarted peer's handshake:\n%s", pa.out)
					}
				} else {
					// 15 s, the timer's jitter (under 334 ms), then the
					// handshake and the next ping: 18 s leaves 2.5 s to spare.
					limit := noise.KeepaliveTimeout + noise.RekeyTimeout + noise.RekeyTimeoutJitterMax + 2500*time.Millisecond
					took := a.pingWithin(t, z.inner[0].Addr(), limit.Truncate(time.Second))
					t.Logf("first reply from the restarted peer after %v of PipeGuard sending", took.Round(time.Millisecond))
					if !loggedMore(initiated, wasInitiated) {
						t.Errorf("the new handshake was not PipeGuard's own:\n%s", pa.out)
					}
				}
				if after := handshakeOf(t, a, z); unixSeconds(t, after) < unixSeconds(t, before) {
					t.Errorf("latest handshake went back from %s to %s", before, after)
				}
				trafficResumes(t, a, z)
				stopAndCheck(t, pa, a)
				pz.stop(t, syscall.SIGTERM, 3*time.Second)
			})
		}
	}
}

// TestPipeGuardKilled kills the PipeGuard client with SIGKILL, so that
// nothing of its orderly stop runs and its UAPI socket file stays behind,
// and starts it again with the same config. It must come up (the stale
// socket replaced, the interface made afresh), start a new handshake as
// soon as it sends (its first packet answered within Rekey-Timeout),
// carry traffic both ways, and stop cleanly afterwards.
func TestPipeGuardKilled(t *testing.T) {
	b := binaries(t)
	for _, kind := range peerKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			a, z := peeredNodes(t)
			pa, pz := startWithPeer(t, b, a, z, kind)

			pa.kill(t)
			if _, err := os.Stat(uapi.SocketPath(a.iface)); err != nil {
				t.Fatalf("after SIGKILL the UAPI socket should be left behind, but: %v", err)
			}
			pa = a.startClient(t, b)
			took := a.pingWithin(t, z.inner[0].Addr(), noise.RekeyTimeout)
			t.Logf("first reply after the restart: %v", took.Round(time.Millisecond))
			trafficResumes(t, a, z)
			if show := wg(t, "show", a.iface); !strings.Contains(show, "latest handshake:") {
				t.Errorf("wg show after the restart:\n%s", show)
			}
			stopAndCheck(t, pa, a)
			pz.stop(t, syscall.SIGTERM, 3*time.Second)
		})
	}
}

// TestPeerRoams changes the peer's address while TCP runs both ways
// through the tunnel: the peer's veth gets a second address and loses its
// first (promote_secondaries makes the new one primary, so the subnet's
// route stays). The peer then sends from the new address; PipeGuard must
// take it as the endpoint from the first authenticated packet (WireGuard's
// roaming), send there, and both transfers must complete intact.
func TestPeerRoams(t *testing.T) {
	b := binaries(t)
	for _, kind := range peerKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			nsA, nsB := netnstest.New(t), netnstest.New(t)
			pa4, pz4 := netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24")
			moved := netip.MustParsePrefix("10.99.0.3/24")
			_, vethZ := netnstest.Link(t, nsA, nsB, pa4, pz4)
			// Written on a thread in the namespace: /proc/sys/net is the
			// opener's namespace's (and procps' sysctl may be missing).
			if err := nsB.Do(func() error {
				return os.WriteFile("/proc/sys/net/ipv4/conf/"+vethZ+"/promote_secondaries", []byte("1\n"), 0o644)
			}); err != nil {
				t.Fatal(err)
			}
			a, z := newNode(t, nsA, pa4.Addr(), 1), newNode(t, nsB, pz4.Addr(), 2)
			a.writeConfig(t, z.asPeer(true))
			z.writeConfig(t, a.asPeer(true))
			pa, pz := startWithPeer(t, b, a, z, kind)

			// 6 MiB each way in 64 KiB writes 30 ms apart: about 3 s, and
			// the move comes after 1 s.
			slow := func(c net.Conn) net.Conn { return paced{c, 30 * time.Millisecond} }
			var bg sync.WaitGroup
			var errs [2]error
			var res [2]tcpcheck.Result
			begin := time.Now()
			for i, dir := range [][2]*node{{a, z}, {z, a}} {
				bg.Go(func() { res[i], errs[i] = tryTransfer(t, dir[0], dir[1], 6<<20, slow) })
			}
			time.Sleep(time.Second)
			nsB.MustRun(t, "ip", "addr", "add", moved.String(), "dev", vethZ, "nodad")
			nsB.MustRun(t, "ip", "addr", "del", pz4.String(), "dev", vethZ)
			movedAt := time.Since(begin)
			bg.Wait()
			for i, what := range []string{"PipeGuard → peer", "peer → PipeGuard"} {
				if errs[i] != nil {
					t.Fatalf("%s across the move: %v", what, errs[i])
				}
				if res[i].Duration <= movedAt {
					t.Fatalf("%s took %v, over before the move at %v", what, res[i].Duration, movedAt)
				}
			}
			want := z.key.Public().String() + "\t" + netip.AddrPortFrom(moved.Addr(), z.port).String()
			if ep := strings.TrimSpace(wg(t, "show", a.iface, "endpoints")); ep != want {
				t.Errorf("PipeGuard's endpoint for the peer after the move: %q, want %q", ep, want)
			}
			if out, err := nsB.Run("ip", "-4", "addr", "show", "dev", vethZ); err != nil || strings.Contains(out, pz4.Addr().String()+"/") {
				t.Fatalf("the old address is still there (%v):\n%s", err, out)
			}
			a.ping(t, z.inner[0].Addr())
			stopAndCheck(t, pa, a)
			pz.stop(t, syscall.SIGTERM, 3*time.Second)
		})
	}
}
