package tunio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ipChecksum is the Internet checksum of b, folded, starting from sum.
func ipChecksum(b []byte, sum uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// udpPacket builds an IPv4 or IPv6 UDP packet with correct checksums.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	var pseudo []byte
	pseudo = append(pseudo, src.Addr().AsSlice()...)
	pseudo = append(pseudo, dst.Addr().AsSlice()...)
	pseudo = append(pseudo, 0, unix.IPPROTO_UDP, byte(len(udp)>>8), byte(len(udp)))
	var sum uint32
	for i := 0; i < len(pseudo); i += 2 {
		sum += uint32(pseudo[i])<<8 | uint32(pseudo[i+1])
	}
	binary.BigEndian.PutUint16(udp[6:], ipChecksum(udp, sum))
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(udp))
		ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		copy(ip[12:], src.Addr().AsSlice())
		copy(ip[16:], dst.Addr().AsSlice())
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip, 0))
		return append(ip, udp...)
	}
	ip := make([]byte, 40, 40+len(udp))
	ip[0], ip[6], ip[7] = 0x60, unix.IPPROTO_UDP, 64
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	copy(ip[8:], src.Addr().AsSlice())
	copy(ip[24:], dst.Addr().AsSlice())
	return append(ip, udp...)
}

// parseUDP returns the addresses and payload of an IPv4/IPv6 UDP packet.
func parseUDP(p []byte) (src, dst netip.AddrPort, payload []byte, ok bool) {
	var hl int
	var sa, da netip.Addr
	switch {
	case len(p) >= 28 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP:
		hl = int(p[0]&0xf) * 4
		sa, da = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	case len(p) >= 48 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_UDP:
		hl = 40
		sa, da = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
	default:
		return
	}
	u := p[hl:]
	src = netip.AddrPortFrom(sa, binary.BigEndian.Uint16(u[0:]))
	dst = netip.AddrPortFrom(da, binary.BigEndian.Uint16(u[2:]))
	return src, dst, u[8:binary.BigEndian.Uint16(u[4:])], true
}

type tunFamily struct {
	name   string
	local  netip.Prefix // address of the TUN
	routed netip.Prefix // routed into the TUN
	remote netip.Addr   // an address in routed
}

var tunFamilies = []tunFamily{
	{"ipv4", netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("10.77.1.0/24"), netip.MustParseAddr("10.77.1.5")},
	{"ipv6", netip.MustParsePrefix("fd77::1/64"), netip.MustParsePrefix("fd77:1::/64"), netip.MustParseAddr("fd77:1::5")},
}

// TestTUN creates a real TUN in a namespace of its own, configures it over
// netlink, and checks both directions: a datagram the kernel routes into
// the TUN is read at the offset, and packets written to the TUN reach a
// socket.
func TestTUN(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	name := fmt.Sprintf("pgtest%d", rand.Uint32N(1e6))
	var dev Device
	var err error
	ns.do(func() {
		if dev, err = CreateTUN(name, 1420); err != nil {
			return
		}
		for _, step := range []func() error{
			func() error { return SetLinkUp("lo") }, // local traffic of the probes
			func() error { return SetMTU(name, InnerMTU) },
			func() error { return SetLinkUp(name) },
			func() error { return AddAddress(name, tunFamilies[0].local) },
			func() error { return AddAddress(name, tunFamilies[1].local) },
			func() error { return AddRoute(name, tunFamilies[0].routed) },
			func() error { return AddRoute(name, tunFamilies[1].routed) },
		} {
			if err = step(); err != nil {
				return
			}
		}
	})
	if dev != nil {
		t.Cleanup(func() { dev.Close() })
	}
	if err != nil {
		t.Fatal(err)
	}
	if dev.Name() != name {
		t.Fatalf("Name = %q", dev.Name())
	}
	waitFor(t, func() bool { return dev.MTU() == InnerMTU }, "MTU follows SetMTU")
	t.Logf("batch size %d", dev.BatchSize())

	reads := startReading(t, dev)
	for _, fam := range tunFamilies {
		t.Run(fam.name, func(t *testing.T) {
			var sock *net.UDPConn
			ns.do(func() {
				sock, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.local.Addr(), 0)))
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			local := sock.LocalAddr().(*net.UDPAddr).AddrPort()
			local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
			remote := netip.AddrPortFrom(fam.remote, 4242)
			waitLocalDelivery(t, ns, sock, local)

			// Kernel → TUN.
			msg := []byte("into the tunnel " + fam.name)
			if _, err := sock.WriteToUDPAddrPort(msg, remote); err != nil {
				t.Fatal(err)
			}
			got := reads.next(t, func(p []byte) bool {
				_, dst, _, ok := parseUDP(p)
				return ok && dst == remote
			})
			src, _, payload, _ := parseUDP(got)
			if src != local || !bytes.Equal(payload, msg) {
				t.Fatalf("read %v → payload %q", src, payload)
			}

			// TUN → kernel, one packet and a batch of one flow (which
			// the device may coalesce into one write).
			var bufs [][]byte
			for i := range 6 {
				p := udpPacket(remote, local, []byte(fmt.Sprintf("out of the tunnel %s %d......", fam.name, i)))
				buf := make([]byte, Offset+len(p), Offset+InnerMTU+Tailroom)
				copy(buf[Offset:], p)
				bufs = append(bufs, buf)
			}
			for _, batch := range [][][]byte{bufs[:1], bufs[1:]} {
				if n, err := dev.Write(batch, Offset); err != nil || n != len(batch) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			sock.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i, b := range bufs {
				rb := make([]byte, 2048)
				n, from, err := sock.ReadFromUDPAddrPort(rb)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				_, _, want, _ := parseUDP(b[Offset:])
				if from.Addr().Unmap() != remote.Addr() || !bytes.Equal(rb[:n], want) {
					t.Fatalf("datagram %d from %v: %q, want %q", i, from, rb[:n], want)
				}
			}

			// Without the route, the kernel no longer sends there.
			ns.do(func() { err = DelRoute(name, fam.routed) })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sock.WriteToUDPAddrPort(msg, remote); !errors.Is(err, unix.ENETUNREACH) {
				t.Fatalf("send after DelRoute: %v, want ENETUNREACH", err)
			}
			ns.do(func() { err = DelAddress(name, fam.local) })
			if err != nil {
				t.Fatal(err)
			}
		})
	}

	if _, err := dev.Write([][]byte{make([]byte, 40)}, 4); dev.BatchSize() > 1 && !errors.Is(err, ErrOffset) {
		t.Fatalf("Write at offset 4: %v", err)
	}
	dev.Close()
	if err := reads.wait(); !IsClosed(err) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := dev.Write(bufsOf(1), Offset); !IsClosed(err) {
		t.Fatalf("Write after Close: %v", err)
	}
	ns.do(func() {
		if _, err := net.InterfaceByName(name); err == nil {
			t.Error("TUN still exists after Close")
		}
	})
}

// waitLocalDelivery waits until the kernel delivers datagrams to local,
// which for IPv6 on a fresh link waits on the kernel's link watcher: it
// installs the local route for an address only once it sees the link
// running, up to a second after SetLinkUp.
func waitLocalDelivery(t *testing.T, ns *netns, sock *net.UDPConn, local netip.AddrPort) {
	t.Helper()
	var probe *net.UDPConn
	var err error
	network := "udp4"
	if local.Addr().Is6() {
		network = "udp6"
	}
	ns.do(func() { probe, err = net.ListenUDP(network, nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	defer sock.SetReadDeadline(time.Time{})
	buf := make([]byte, 16)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if _, err := probe.WriteToUDPAddrPort([]byte("probe"), local); err != nil {
			t.Fatal(err)
		}
		sock.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _, err := sock.ReadFromUDPAddrPort(buf); err == nil && string(buf[:n]) == "probe" {
			return
		}
	}
	t.Fatalf("no local delivery to %v", local)
}

func bufsOf(n int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, Offset+InnerMTU+Tailroom)
	}
	return b
}

// reader reads a Device on its own goroutine until it fails, checking
// that the headroom before the offset is never touched.
type reader struct {
	pkts chan []byte
	err  chan error
}

const headroomMark = 0xa5

func startReading(t *testing.T, dev Device) *reader {
	r := &reader{pkts: make(chan []byte, 64), err: make(chan error, 1)}
	go func() {
		bufs, sizes := bufsOf(dev.BatchSize()), make([]int, dev.BatchSize())
		for _, b := range bufs {
			for i := range Offset {
				b[i] = headroomMark
			}
		}
		for {
			n, err := dev.Read(bufs, sizes, Offset)
			for i := range n {
				if bytes.Count(bufs[i][:Offset], []byte{headroomMark}) != Offset {
					err = errors.New("Read wrote before the offset")
				}
				select {
				case r.pkts <- bytes.Clone(bufs[i][Offset : Offset+sizes[i]]):
				default: // unrelated traffic nobody waits for
				}
			}
			if err != nil {
				r.err <- err
				close(r.pkts)
				return
			}
		}
	}()
	t.Cleanup(func() { dev.Close(); r.wait() })
	return r
}

// next returns the next packet read that match accepts.
func (r *reader) next(t *testing.T, match func([]byte) bool) []byte {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case p, ok := <-r.pkts:
			if !ok {
				t.Fatalf("reading stopped: %v", r.wait())
			}
			if match(p) {
				return p
			}
		case <-timeout:
			t.Fatal("expected packet not read from the TUN")
		}
	}
}

// wait returns the error that stopped the reader.
func (r *reader) wait() error {
	for range r.pkts {
	}
	err := <-r.err
	r.err <- err
	return err
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTUNReadTooBig: with the interface MTU above the buffers (wg-quick
// sets 1420), a larger packet from the kernel is dropped with
// ErrPacketTooBig, never cut short, and reading goes on. It also pins the
// text of wireguard's error that tunio maps.
func TestTUNReadTooBig(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	name := fmt.Sprintf("pgbig%d", rand.Uint32N(1e6))
	var dev Device
	var sock *net.UDPConn
	var err error
	ns.do(func() {
		if dev, err = CreateTUN(name, 1420); err != nil {
			return
		}
		for _, step := range []func() error{
			func() error { return SetLinkUp(name) },
			func() error { return AddAddress(name, netip.MustParsePrefix("10.77.0.1/24")) },
		} {
			if err = step(); err != nil {
				return
			}
		}
		sock, err = net.ListenUDP("udp4", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	defer sock.Close()
	if dev.BatchSize() == 1 {
		t.Skip("no TUN offloads here: the kernel cuts the packet to the buffer, which the stages detect by its IP header")
	}
	dst := netip.MustParseAddrPort("10.77.0.2:9")
	bufs, sizes := bufsOf(dev.BatchSize()), make([]int, dev.BatchSize())
	// A 1400-byte packet, then a small one; skip whatever else the kernel
	// sends (IPv6 router solicitations, ...).
	if _, err := sock.WriteToUDPAddrPort(make([]byte, 1400-28), dst); err != nil {
		t.Fatal(err)
	}
	if _, err := sock.WriteToUDPAddrPort([]byte("small"), dst); err != nil {
		t.Fatal(err)
	}
	tooBig := 0
	for range 20 {
		n, err := dev.Read(bufs, sizes, Offset)
		if errors.Is(err, ErrPacketTooBig) {
			tooBig++
			continue
		}
		if err != nil {
			t.Fatalf("Read: %v (want ErrPacketTooBig for the large packet)", err)
		}
		for i := range n {
			if sizes[i] > InnerMTU {
				t.Fatalf("Read returned a %d-byte packet into %d-byte buffers", sizes[i], InnerMTU)
			}
			if _, d, payload, ok := parseUDP(bufs[i][Offset : Offset+sizes[i]]); ok && d == dst {
				if string(payload) != "small" {
					t.Fatalf("read %d bytes of payload to %v: the large packet was cut short", len(payload), d)
				}
				if tooBig != 1 {
					t.Fatalf("%d ErrPacketTooBig before the small packet, want 1", tooBig)
				}
				return
			}
		}
	}
	t.Fatal("the small packet after the large one was not read")
}

// TestTUNReadable: Readable turns true when the kernel has routed a
// packet into the device, a Read then returns it without waiting, and
// Readable turns false again once everything queued was read.
func TestTUNReadable(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	name := fmt.Sprintf("pgpoll%d", rand.Uint32N(1e6))
	var dev Device
	var sock *net.UDPConn
	var err error
	ns.do(func() {
		if dev, err = CreateTUN(name, InnerMTU); err != nil {
			return
		}
		for _, step := range []func() error{
			func() error { return SetLinkUp(name) },
			func() error { return AddAddress(name, netip.MustParsePrefix("10.77.0.1/24")) },
		} {
			if err = step(); err != nil {
				return
			}
		}
		sock, err = net.ListenUDP("udp4", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	defer sock.Close()
	rp := dev.(ReadPoller)
	bufs, sizes := bufsOf(dev.BatchSize()), make([]int, dev.BatchSize())
	dst := netip.MustParseAddrPort("10.77.0.2:9")
	if _, err := sock.WriteToUDPAddrPort([]byte("poll me"), dst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rp.Readable, "Readable after a packet was routed into the device")
	// Read what is queued (the datagram, and whatever else the kernel
	// sends a new link, such as IPv6 router solicitations) while Readable
	// says so; no Read may block.
	found := false
	for deadline := time.Now().Add(3 * time.Second); rp.Readable(); {
		if time.Now().After(deadline) {
			t.Fatal("Readable stays true")
		}
		n, err := dev.Read(bufs, sizes, Offset)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, d, _, ok := parseUDP(bufs[i][Offset : Offset+sizes[i]]); ok && d == dst {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("the datagram was not among the packets read while Readable")
	}
	if a := testing.AllocsPerRun(100, func() { rp.Readable() }); a != 0 {
		t.Fatalf("%v allocations per Readable", a)
	}
	dev.Close()
	if rp.Readable() {
		t.Fatal("Readable after Close")
	}
}
