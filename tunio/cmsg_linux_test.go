package tunio

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

func TestCmsgSizes(t *testing.T) {
	if sizeofSegmentCmsg != unix.CmsgSpace(2) {
		t.Errorf("sizeofSegmentCmsg %d, want %d", sizeofSegmentCmsg, unix.CmsgSpace(2))
	}
	if sizeofPktinfoCmsg != unix.CmsgSpace(unix.SizeofInet6Pktinfo) || sizeofPktinfoCmsg < unix.CmsgSpace(unix.SizeofInet4Pktinfo) {
		t.Errorf("sizeofPktinfoCmsg %d, want %d", sizeofPktinfoCmsg, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	}
	if sizeofECNCmsg != unix.CmsgSpace(4) {
		t.Errorf("sizeofECNCmsg %d, want %d", sizeofECNCmsg, unix.CmsgSpace(4))
	}
	if recvCtrlSize < 2*unix.CmsgSpace(4)+unix.CmsgSpace(unix.SizeofInet6Pktinfo)+unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) {
		t.Errorf("recvCtrlSize %d too small for GRO, traffic class, IPv6 pktinfo and a timestamp", recvCtrlSize)
	}
}

// TestParseControlECNAndStamp: the TOS (one byte, as the kernel delivers
// it, or an int), the traffic class and the receive timestamp are read
// beside the other cmsgs, and what putECN writes reads back.
func TestParseControlECNAndStamp(t *testing.T) {
	ts := unix.NsecToTimespec(1_700_000_000_123_456_789)
	tsData := unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
	for _, tt := range []struct {
		name  string
		b     []byte
		ecn   uint8
		stamp int64
		seg   int
	}{
		{"TOS byte", (&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_TOS, []byte{0xb9}).bytes(), 1, 0, 0},
		{"TOS int", (&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_TOS, intData(0x2a)).bytes(), 2, 0, 0},
		{"traffic class", (&cmsgs{}).add(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, intData(0x03)).bytes(), 3, 0, 0},
		{"all", (&cmsgs{}).add(unix.SOL_UDP, unix.UDP_GRO, intData(1312)).
			add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pktinfo6Data("fd00::1", 2)).
			add(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, intData(0x02)).
			add(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, tsData).bytes(), 2, ts.Nano(), 1312},
		{"none", (&cmsgs{}).add(unix.SOL_UDP, unix.UDP_GRO, intData(100)).bytes(), 0, 0, 100},
	} {
		r := parseControl(tt.b)
		if r.ecn != tt.ecn || r.stamp != tt.stamp || r.seg != tt.seg {
			t.Errorf("%s: ecn %d, stamp %d, segment %d; want %d, %d, %d", tt.name, r.ecn, r.stamp, r.seg, tt.ecn, tt.stamp, tt.seg)
		}
	}
	for _, v4 := range []bool{true, false} {
		for ecn := uint8(0); ecn < 4; ecn++ {
			b := alignedBytes(sendCtrlSize)
			n := putSegment(b, 1312)
			n += putECN(b[n:], v4, ecn)
			if r := parseControl(b[:n]); r.ecn != ecn {
				t.Errorf("v4 %v: ECN %d read back as %d", v4, ecn, r.ecn)
			}
		}
	}
}

// cmsgs builds control data the way the kernel lays it out.
type cmsgs struct{ b []byte }

func (c *cmsgs) add(level, typ int32, data []byte) *cmsgs {
	off := len(c.b)
	c.b = append(c.b, make([]byte, unix.CmsgSpace(len(data)))...)
	h := (*unix.Cmsghdr)(unsafePointer(c.b[off:]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(c.b[off+unix.CmsgLen(0):], data)
	return c
}

// bytes returns the data in a buffer aligned for cmsghdrs, as the socket
// code's buffers are.
func (c *cmsgs) bytes() []byte {
	if len(c.b) == 0 {
		return nil
	}
	b := alignedBytes(len(c.b))
	copy(b, c.b)
	return b
}

func pktinfo4Data(ifindex int32, specDst, addr string) []byte {
	d := make([]byte, unix.SizeofInet4Pktinfo)
	binary.NativeEndian.PutUint32(d, uint32(ifindex))
	s, a := netip.MustParseAddr(specDst).As4(), netip.MustParseAddr(addr).As4()
	copy(d[4:], s[:])
	copy(d[8:], a[:])
	return d
}

func pktinfo6Data(addr string, ifindex int32) []byte {
	d := make([]byte, unix.SizeofInet6Pktinfo)
	a := netip.MustParseAddr(addr).As16()
	copy(d, a[:])
	binary.NativeEndian.PutUint32(d[16:], uint32(ifindex))
	return d
}

func intData(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

func TestParseControl(t *testing.T) {
	gro := intData(1312)
	p4 := pktinfo4Data(3, "10.0.0.2", "10.0.0.2")
	p6 := pktinfo6Data("fd00::2", 4)
	full := (&cmsgs{}).add(unix.SOL_UDP, unix.UDP_GRO, gro).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, p6).bytes()
	tests := []struct {
		name    string
		b       []byte
		seg     int
		local   string // "" for the zero Local
		ifindex int
	}{
		{"empty", nil, 0, "", 0},
		{"gro only", (&cmsgs{}).add(unix.SOL_UDP, unix.UDP_GRO, gro).bytes(), 1312, "", 0},
		{"ipv4 pktinfo", (&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_PKTINFO, p4).bytes(), 0, "10.0.0.2", 3},
		{"ipv4 pktinfo takes spec_dst, not a broadcast header address",
			(&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo4Data(3, "10.0.0.2", "10.0.0.255")).bytes(), 0, "10.0.0.2", 3},
		{"ipv6 pktinfo and gro", full, 1312, "fd00::2", 4},
		{"pktinfo first, then gro",
			(&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_PKTINFO, p4).add(unix.SOL_UDP, unix.UDP_GRO, gro).bytes(), 1312, "10.0.0.2", 3},
		{"ipv4 on a dual-stack socket, v4-mapped",
			(&cmsgs{}).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pktinfo6Data("::ffff:10.0.0.2", 2)).bytes(), 0, "10.0.0.2", 2},
		{"an unknown cmsg is skipped",
			(&cmsgs{}).add(unix.SOL_IP, unix.IP_TOS, intData(7)).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, p6).bytes(), 0, "fd00::2", 4},
		{"multicast destination is no source",
			(&cmsgs{}).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pktinfo6Data("ff02::1", 2)).bytes(), 0, "", 0},
		{"limited broadcast is no source",
			(&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo4Data(3, "255.255.255.255", "255.255.255.255")).bytes(), 0, "", 0},
		{"unspecified is no source",
			(&cmsgs{}).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pktinfo6Data("::", 2)).bytes(), 0, "", 0},
		{"short pktinfo is ignored",
			(&cmsgs{}).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, p6[:16]).bytes(), 0, "", 0},
		{"cut inside the second cmsg keeps the first", full[:unix.CmsgSpace(4)+8], 1312, "", 0},
		{"cut inside the first cmsg", full[:10], 0, "", 0},
		{"length beyond the data", func() []byte {
			b := (&cmsgs{}).add(unix.SOL_UDP, unix.UDP_GRO, gro).bytes()
			(*unix.Cmsghdr)(unsafePointer(b)).SetLen(200)
			return b
		}(), 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := parseControl(tt.b)
			seg, l := r.seg, r.local
			if seg != tt.seg {
				t.Errorf("segment %d, want %d", seg, tt.seg)
			}
			want := Local{}
			if tt.local != "" {
				want = LocalFrom(netip.MustParseAddr(tt.local), tt.ifindex)
			}
			if l != want {
				t.Errorf("local %v, want %v", l, want)
			}
			if got := GROSegment(tt.b); got != tt.seg {
				t.Errorf("GROSegment %d, want %d", got, tt.seg)
			}
		})
	}
}

// TestPutControl checks what the send side writes: a source written for
// either kind of socket reads back through the parser as the same
// address, after a segment size in the kernel's layout.
func TestPutControl(t *testing.T) {
	tests := []struct {
		addr string
		v6   bool
	}{
		{"10.0.0.2", false},
		{"10.0.0.2", true}, // v4-mapped in IPV6_PKTINFO
		{"fd00::2", true},
	}
	for _, tt := range tests {
		l := LocalFrom(netip.MustParseAddr(tt.addr), 7)
		b := alignedBytes(sendCtrlSize)
		n := putSegment(b, 1312)
		n += putPktinfo(b[n:], l, tt.v6)
		got := parseControl(b[:n]).local
		// The interface is not sent: routing picks it.
		if want := LocalFrom(l.Addr(), 0); got != want {
			t.Errorf("%s v6=%v: read back %v", tt.addr, tt.v6, got)
		}
		sh := (*unix.Cmsghdr)(unsafePointer(b))
		if sh.Level != unix.SOL_UDP || sh.Type != unix.UDP_SEGMENT || int(sh.Len) != unix.CmsgLen(2) ||
			binary.NativeEndian.Uint16(b[unix.CmsgLen(0):]) != 1312 {
			t.Errorf("segment cmsg %+v, size %d", *sh, binary.NativeEndian.Uint16(b[unix.CmsgLen(0):]))
		}
		h := (*unix.Cmsghdr)(unsafePointer(b[sizeofSegmentCmsg:]))
		if wantLevel := int32(unix.IPPROTO_IP); !tt.v6 && h.Level != wantLevel || tt.v6 && h.Level != unix.IPPROTO_IPV6 {
			t.Errorf("%s v6=%v: cmsg level %d", tt.addr, tt.v6, h.Level)
		}
	}
}

func TestCanSendFrom(t *testing.T) {
	v4, v6 := LocalFrom(netip.MustParseAddr("10.0.0.2"), 1), LocalFrom(netip.MustParseAddr("fd00::2"), 1)
	to4, to6 := netip.MustParseAddrPort("10.0.0.3:1"), netip.MustParseAddrPort("[fd00::3]:1")
	to4in6 := netip.MustParseAddrPort("[::ffff:10.0.0.3]:1")
	tests := []struct {
		name string
		l    Local
		dst  netip.AddrPort
		v6   bool
		want bool
	}{
		{"none", Local{}, to4, true, false},
		{"v4 from v4 on a v4 socket", v4, to4, false, true},
		{"v4 from v4 on a v6 socket", v4, to4, true, true},
		{"v4-mapped destination", v4, to4in6, true, true},
		{"v6 from v6", v6, to6, true, true},
		{"v6 source to v4", v6, to4, true, false},
		{"v4 source to v6", v4, to6, true, false},
		{"v6 on a v4 socket", v6, to6, false, false},
	}
	for _, tt := range tests {
		if got := canSendFrom(tt.l, tt.dst, tt.v6); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzParseControl feeds the control-data parser arbitrary bytes: it must
// never panic, and what it returns must be well formed.
func FuzzParseControl(f *testing.F) {
	f.Add([]byte(nil))
	f.Add((&cmsgs{}).add(unix.SOL_UDP, unix.UDP_GRO, intData(1312)).add(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pktinfo6Data("fd00::2", 4)).b)
	f.Add((&cmsgs{}).add(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo4Data(3, "10.0.0.2", "10.0.0.2")).b)
	f.Add((&cmsgs{}).add(unix.SOL_IP, unix.IP_TOS, intData(7)).b[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		b := alignedBytes(len(data) + 1)[:len(data)]
		copy(b, data)
		l := parseControl(b).local
		if l.IsValid() {
			a := l.Addr()
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
				t.Fatalf("parsed local %v", l)
			}
			if LocalFrom(a, l.IfIndex()) != l {
				t.Fatalf("local %v does not round-trip", l)
			}
		}
	})
}
