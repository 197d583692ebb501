package e2e

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/internal/leakcap"
	"pipeguard/cmd/internal/netnstest"
)

// leakLab is a full tunnel with a way around it: the client's namespace
// (a) has default routes of both families over its veth to the peer's
// namespace (z), which answers for farV4 and farV6 itself. Those
// addresses are the "outside host": through the tunnel, the peer's
// wireguard-go delivers packets to them; in cleartext, the main table
// reaches them directly. A capture on a's veth tells the two apart.
type leakLab struct {
	a, z   *node
	veth   string // a's outer interface
	state  string // a's state directory (the rules' record)
	before string // a's policy routing before the tunnel
}

// IPv6 addresses of the veth pair, so that IPv6 has a way out too.
var (
	vethV6A = netip.MustParsePrefix("fd99::1/64")
	vethV6Z = netip.MustParsePrefix("fd99::2/64")
)

// newLeakLab makes the namespaces, the cleartext routes and the peer's
// config, checks that the far addresses answer in cleartext (so a leak
// would get out), and starts the peer (wireguard-go). The client's
// config routes allowed (0.0.0.0/0, ::/0, or one of them) to the peer.
func newLeakLab(t *testing.T, b bins, allowed ...netip.Prefix) *leakLab {
	t.Helper()
	a, z := newNodes(t)
	l := &leakLab{a: a, z: z, state: t.TempDir()}
	giveFarAddresses(t, z.ns)
	l.veth = vethOf(t, a)
	a.ns.MustRun(t, "ip", "addr", "add", vethV6A.String(), "dev", l.veth, "nodad")
	z.ns.MustRun(t, "ip", "addr", "add", vethV6Z.String(), "dev", vethOf(t, z), "nodad")
	a.ns.MustRun(t, "ip", "route", "add", "default", "via", z.outer.String())
	a.ns.MustRun(t, "ip", "-6", "route", "add", "default", "via", vethV6Z.Addr().String())
	for _, dst := range []netip.Addr{farV4, farV6} {
		if out, ok := pingOut(a.ns, dst); !ok {
			t.Fatalf("%s does not answer in cleartext; the lab would show no leak:\n%s", dst, out)
		}
	}
	a.ns.SettleIPv6(t)
	l.before = policyState(t, a.ns)
	p := z.asPeer(true)
	p.AllowedIPs = allowed
	a.writeConfig(t, p)
	z.writeConfig(t, a.asPeer(true))
	z.startWGPeer(t, b)
	return l
}

// vethOf is the name of n's veth (the interface with its outer address).
func vethOf(t *testing.T, n *node) string {
	t.Helper()
	f := strings.Fields(n.ns.MustRun(t, "ip", "-o", "-4", "addr", "show", "to", n.outer.String()))
	if len(f) < 2 {
		t.Fatalf("no interface has %s in %s", n.outer, n.ns.Name)
	}
	return f[1]
}

// startClient starts the client with the lab's state directory.
func (l *leakLab) startClient(t *testing.T, b bins, extra ...string) *proc {
	t.Helper()
	return l.a.startClientIn(t, b, l.state, extra...)
}

// capture starts counting what a's veth sends; the caller closes it.
func (l *leakLab) capture(t *testing.T) *leakcap.Capture {
	t.Helper()
	var c *leakcap.Capture
	f := leakcap.Filter{Peer: netip.AddrPortFrom(l.z.outer, l.z.port)}
	if err := l.a.ns.Do(func() (err error) { c, err = leakcap.Open(l.veth, f); return err }); err != nil {
		t.Fatal(err)
	}
	return c
}

// assertNoLeak closes c and fails the test if anything leaked.
func assertNoLeak(t *testing.T, c *leakcap.Capture, what string) leakcap.Result {
	t.Helper()
	res, err := c.Close()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	t.Logf("%s: the veth sent %d frames, %d leaked", what, res.Sent, res.Leaked)
	if res.Leaked > 0 {
		t.Errorf("%s: %d packets left in cleartext, the first: %v", what, res.Leaked, res.Examples)
	}
	return res
}

// traffic is what a namespace's applications keep sending to the far
// addresses: UDP to port 53, pings and TCP SYNs, each family. It counts
// what the kernel took, what it refused (no route: the tunnel failed
// closed), and the ping replies (the traffic got through, by the tunnel
// or not).
type traffic struct {
	stop chan struct{}
	done chan error

	sent, refused, replies atomic.Int64
}

// trafficEvery is the pause between two rounds: 200 rounds a second,
// about a thousand packets a second in all.
const trafficEvery = 5 * time.Millisecond

// startTraffic sends to dsts from ns until stop, a round every pause.
// With when set, a round is sent only while when reports true (it runs
// in ns): a start's first packets, sent the moment the interface
// appears.
func startTraffic(t *testing.T, ns *netnstest.NS, dsts []netip.Addr, pause time.Duration, when func() bool) *traffic {
	t.Helper()
	tr := &traffic{stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		tr.done <- ns.Do(func() error { return tr.run(dsts, pause, when, ready) })
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.finish(t) })
	return tr
}

// finish stops the traffic (once) and reports its counts.
func (tr *traffic) finish(t *testing.T) {
	t.Helper()
	select {
	case <-tr.stop:
		return
	default:
	}
	close(tr.stop)
	if err := <-tr.done; err != nil {
		t.Errorf("traffic: %v", err)
	}
	t.Logf("traffic: %d packets sent, %d refused (no route), %d ping replies", tr.sent.Load(), tr.refused.Load(), tr.replies.Load())
}

// sockets of one family for the traffic.
type trafficSockets struct {
	udp, icmp int
	family    int
}

func (tr *traffic) run(dsts []netip.Addr, pause time.Duration, when func() bool, ready chan<- error) error {
	var socks [2]trafficSockets
	for i, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		proto := unix.IPPROTO_ICMP
		if fam == unix.AF_INET6 {
			proto = unix.IPPROTO_ICMPV6
		}
		var err error
		s := &socks[i]
		s.family = fam
		if s.udp, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err == nil {
			s.icmp, err = unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		}
		if err != nil {
			ready <- err
			return nil
		}
		defer unix.Close(s.udp)
		defer unix.Close(s.icmp)
	}
	ready <- nil
	var syns []int // open TCP sockets whose SYN went out; the oldest are closed
	defer func() {
		for _, fd := range syns {
			unix.Close(fd)
		}
	}()
	buf := make([]byte, 1500)
	for round := 0; ; round++ {
		select {
		case <-tr.stop:
			return nil
		default:
		}
		if when == nil || when() {
			for _, dst := range dsts {
				s := &socks[0]
				if dst.Is6() {
					s = &socks[1]
				}
				tr.count(unix.Sendto(s.udp, []byte("pipeguard leak probe"), 0, sockaddr(dst, 53)))
				tr.count(unix.Sendto(s.icmp, echoRequest(dst.Is6(), uint16(round)), 0, sockaddr(dst, 0)))
				if round%10 == 0 {
					fd, err := unix.Socket(s.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
					if err != nil {
						return err
					}
					err = unix.Connect(fd, sockaddr(dst, 443))
					if errors.Is(err, unix.EINPROGRESS) {
						err = nil
					}
					tr.count(err)
					syns = append(syns, fd)
				}
			}
			for len(syns) > 16 {
				unix.Close(syns[0])
				syns = syns[1:]
			}
			for i := range socks {
				tr.readReplies(socks[i], buf)
			}
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// count records a send's outcome: no route (the kernel's answer to a
// route that is unreachable, a blackhole, or missing) is refused; the
// rest were sent.
func (tr *traffic) count(err error) {
	switch {
	case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ECONNREFUSED):
		tr.sent.Add(1)
	default:
		tr.refused.Add(1)
	}
}

// readReplies counts the echo replies waiting on s's ICMP socket.
func (tr *traffic) readReplies(s trafficSockets, buf []byte) {
	for {
		n, _, err := unix.Recvfrom(s.icmp, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		b := buf[:n]
		if s.family == unix.AF_INET {
			// A raw IPv4 socket hands over the IP header too.
			if n < 20 || n < int(b[0]&0x0f)*4+1 {
				continue
			}
			b = b[int(b[0]&0x0f)*4:]
			if b[0] == 0 {
				tr.replies.Add(1)
			}
		} else if n > 0 && b[0] == 129 {
			tr.replies.Add(1)
		}
	}
}

// echoRequest is an ICMP (or ICMPv6) echo request with sequence seq; the
// kernel computes ICMPv6 checksums itself, ICMP's are ours.
func echoRequest(v6 bool, seq uint16) []byte {
	b := []byte{8, 0, 0, 0, 0x50, 0x47, byte(seq >> 8), byte(seq), 'p', 'g'}
	if v6 {
		b[0] = 128
		return b
	}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	b[2], b[3] = byte(^sum>>8), byte(^sum)
	return b
}

// sockaddr is dst:port for the socket calls.
func sockaddr(dst netip.Addr, port int) unix.Sockaddr {
	if dst.Is4() {
		return &unix.SockaddrInet4{Addr: dst.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: dst.As16(), Port: port}
}

// interfaceExists reports whether name exists, asked from the calling
// thread's namespace (for startTraffic's when).
func interfaceExists(name string) func() bool {
	return func() bool {
		_, err := net.InterfaceByName(name)
		return err == nil
	}
}

// pollUntil waits up to within for cond, polling, and fails the test
// with what otherwise.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits up to within for p to exit by itself and returns its
// exit code.
func waitExit(t *testing.T, p *proc, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.exit:
		p.exit <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v", p.name, within)
		return 0
	}
}

// kill kills p with SIGKILL and waits for its interface to go.
func (l *leakLab) kill(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.exit
	p.exit <- err
	pollUntil(t, 10*time.Second, "the killed client's interface goes", func() bool {
		_, err := l.a.ns.Run("ip", "link", "show", l.a.iface)
		return err != nil
	})
}
