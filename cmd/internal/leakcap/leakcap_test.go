package leakcap

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// frame builds an Ethernet frame of type etherType around payload.
func frame(etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, payload...)
}

// ipv4 builds an IPv4 header (20 bytes) for proto from src to dst around
// payload; fragOff is the fragment offset field.
func ipv4(proto byte, src, dst string, fragOff uint16, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[6:], fragOff)
	h[8], h[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, payload...)
}

// ipv6 builds an IPv6 header for next from src to dst around payload,
// with hop limit 255 (neighbour discovery's).
func ipv6(next byte, src, dst string, payload []byte) []byte {
	return ipv6Hops(next, 255, src, dst, payload)
}

// ipv6Hops is ipv6 with a hop limit.
func ipv6Hops(next, hops byte, src, dst string, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, hops
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// udp builds a UDP header and payload.
func udp(src, dst uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], src)
	binary.BigEndian.PutUint16(h[2:], dst)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// wgMessage is a WireGuard message of type typ and length n.
func wgMessage(typ byte, n int) []byte {
	b := make([]byte, n)
	b[0] = typ
	return b
}

// icmpError is an ICMP (or ICMPv6) error of type typ quoting the
// datagram quoted: four bytes of type, code and checksum, four unused.
func icmpError(typ byte, quoted []byte) []byte {
	return append([]byte{typ, 3, 0, 0, 0, 0, 0, 0}, quoted...)
}

func TestClassifyAndLeak(t *testing.T) {
	peer := netip.MustParseAddrPort("10.99.0.2:51820")
	f := Filter{Peer: peer}
	hopByHopMLD := append([]byte{protoICMPv6, 0, 5, 2, 0, 0, 1, 0}, 143, 0, 0, 0)
	for _, tc := range []struct {
		name  string
		frame []byte
		leak  bool
		want  string // Packet.String
	}{
		{"arp", frame(etherARP, make([]byte, 28)), false, "arp"},
		{"wireguard initiation to the peer", frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "10.99.0.2", 0, udp(51820, 51820, wgMessage(1, 148)))), false,
			"wireguard 10.99.0.1:51820 > 10.99.0.2:51820, 190 bytes"},
		{"wireguard data to the peer", frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "10.99.0.2", 0, udp(40000, 51820, wgMessage(4, 32+96)))), false,
			"wireguard 10.99.0.1:40000 > 10.99.0.2:51820, 170 bytes"},
		{"wireguard to someone else", frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "10.99.0.3", 0, udp(51820, 51820, wgMessage(1, 148)))), true, ""},
		{"a wrong length is no wireguard", frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "10.99.0.2", 0, udp(51820, 51820, wgMessage(1, 147)))), true,
			"udp 10.99.0.1:51820 > 10.99.0.2:51820, 189 bytes"},
		{"dns in cleartext", frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "198.51.100.7", 0, udp(40000, 53, []byte("query")))), true,
			"udp 10.99.0.1:40000 > 198.51.100.7:53, 47 bytes"},
		{"tcp syn", frame(etherIPv4, ipv4(protoTCP, "10.99.0.1", "198.51.100.7", 0, make([]byte, 20))), true, ""},
		{"ping", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "198.51.100.7", 0, []byte{8, 0, 0, 0})), true,
			"icmp type 8 10.99.0.1 > 198.51.100.7, 38 bytes"},
		{"a later fragment", frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "10.99.0.2", 185, []byte{1, 0, 0, 0})), true, ""},
		{"neighbour solicitation", frame(etherIPv6, ipv6(protoICMPv6, "fe80::1", "ff02::1:ff00:2", []byte{135, 0, 0, 0})), false, ""},
		{"duplicate address detection", frame(etherIPv6, ipv6(protoICMPv6, "::", "ff02::1:ff00:1", []byte{135, 0, 0, 0})), false, ""},
		{"router solicitation", frame(etherIPv6, ipv6(protoICMPv6, "fe80::1", "ff02::2", []byte{133, 0, 0, 0})), false, ""},
		{"MLDv2 report behind hop-by-hop", frame(etherIPv6, ipv6(protoHopByHop, "fe80::1", "ff02::16", hopByHopMLD)), false,
			"icmp6 type 143 fe80::1 > ff02::16, 66 bytes"},
		{"ping6 to a global address", frame(etherIPv6, ipv6(protoICMPv6, "fd99::1", "2001:db8:ff::7", []byte{128, 0, 0, 0})), true, ""},
		{"neighbour advertisement from a global address", frame(etherIPv6, ipv6(protoICMPv6, "fd99::1", "fe80::2", []byte{136, 0, 0, 0})), false, ""},
		{"neighbour solicitation that a router could forward", frame(etherIPv6, ipv6Hops(protoICMPv6, 64, "fd99::1", "2001:db8::2", []byte{135, 0, 0, 0})), true, ""},
		{"MLD report from a global address", frame(etherIPv6, ipv6(protoICMPv6, "fd99::1", "ff02::16", []byte{143, 0, 0, 0})), true, ""},
		{"udp6 dns", frame(etherIPv6, ipv6(protoUDP, "fd99::1", "2001:db8:ff::7", udp(40000, 53, nil))), true,
			"udp [fd99::1]:40000 > [2001:db8:ff::7]:53, 62 bytes"},
		{"vlan-tagged ping", frame(etherVLAN, append([]byte{0, 7, 0x08, 0x00}, ipv4(protoICMP, "10.99.0.1", "198.51.100.7", 0, []byte{8, 0})...)), true, ""},
		{"another ethertype", frame(0x88cc, make([]byte, 30)), true, "ethertype 0x88cc, 44 bytes"},
		{"port unreachable about the peer's wireguard", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0,
			icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, wgMessage(4, 32+128)))))), false,
			"icmp type 3 10.99.0.1 > 10.99.0.2, 230 bytes"},
		{"port unreachable quoting a cut wireguard message", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0,
			icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, wgMessage(4, 32+1024)))[:20+8+64]))), false, ""},
		{"a quote of eight bytes tells nothing", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0,
			icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, wgMessage(4, 32)))[:28]))), true, ""},
		{"port unreachable about cleartext", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0,
			icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, []byte("a dns answer")))))), true, ""},
		{"port unreachable about another sender's wireguard", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0,
			icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(40000, 51820, wgMessage(4, 32)))))), true, ""},
		{"port unreachable to someone else", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "198.51.100.7", 0,
			icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, wgMessage(4, 32)))))), true, ""},
		{"an echo reply is no error", frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0,
			icmpError(0, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, wgMessage(4, 32)))))), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Classify(tc.frame)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if got := f.Leak(p); got != tc.leak {
				t.Errorf("Leak(%v) = %v, want %v", p, got, tc.leak)
			}
			if tc.want != "" && p.String() != tc.want {
				t.Errorf("String() = %q, want %q", p.String(), tc.want)
			}
		})
	}
}

// TestICMPv6ErrorAboutWireGuard: the IPv6 form of the port unreachable
// that a peer's WireGuard datagram draws while the client is down.
func TestICMPv6ErrorAboutWireGuard(t *testing.T) {
	f := Filter{Peer: netip.MustParseAddrPort("[fd99::2]:51820")}
	for _, tc := range []struct {
		name  string
		quote []byte
		leak  bool
	}{
		{"the peer's initiation", udp(51820, 51820, wgMessage(1, 148)), false},
		{"the peer's transport message", udp(51820, 51820, wgMessage(4, 32+64)), false},
		{"cleartext", udp(51820, 51820, []byte("cleartext")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Classify(frame(etherIPv6, ipv6Hops(protoICMPv6, 64, "fd99::1", "fd99::2", icmpError(1, ipv6(protoUDP, "fd99::2", "fd99::1", tc.quote)))))
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if got := f.Leak(p); got != tc.leak {
				t.Errorf("Leak(%v) = %v, want %v", p, got, tc.leak)
			}
		})
	}
}

func TestClassifyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"no ethernet header", make([]byte, 13), ErrShort},
		{"vlan tag cut", frame(etherVLAN, []byte{0, 7}), ErrShort},
		{"ipv4 cut", frame(etherIPv4, make([]byte, 19)), ErrShort},
		{"ipv4 of version 6", frame(etherIPv4, append([]byte{0x65}, make([]byte, 19)...)), ErrMalformed},
		{"ipv4 header length past the frame", frame(etherIPv4, append([]byte{0x4f}, make([]byte, 19)...)), ErrMalformed},
		{"ipv6 cut", frame(etherIPv6, make([]byte, 39)), ErrShort},
		{"ipv6 hop-by-hop cut", frame(etherIPv6, ipv6(protoHopByHop, "fe80::1", "ff02::16", []byte{58, 1, 0})), ErrShort},
		{"udp cut", frame(etherIPv4, ipv4(protoUDP, "10.0.0.1", "10.0.0.2", 0, make([]byte, 7))), ErrShort},
		{"icmp cut", frame(etherIPv4, ipv4(protoICMP, "10.0.0.1", "10.0.0.2", 0, nil)), ErrShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Classify(tc.frame); !errors.Is(err, tc.want) {
				t.Errorf("Classify: %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzClassify: no frame panics Classify, and what it reports is
// consistent with the frame.
func FuzzClassify(f *testing.F) {
	f.Add(frame(etherARP, make([]byte, 28)))
	f.Add(frame(etherIPv4, ipv4(protoUDP, "10.99.0.1", "10.99.0.2", 0, udp(51820, 51820, wgMessage(1, 148)))))
	f.Add(frame(etherIPv6, ipv6(protoHopByHop, "fe80::1", "ff02::16", []byte{58, 0, 5, 2, 0, 0, 1, 0, 143, 0, 0, 0})))
	f.Add(frame(etherVLAN, append([]byte{0, 7, 0x86, 0xdd}, ipv6(protoTCP, "fd99::1", "2001:db8::1", make([]byte, 20))...)))
	f.Add(frame(etherIPv4, ipv4(protoICMP, "10.99.0.1", "10.99.0.2", 0, icmpError(3, ipv4(protoUDP, "10.99.0.2", "10.99.0.1", 0, udp(51820, 51820, wgMessage(4, 48)))))))
	f.Add(frame(etherIPv6, ipv6(protoICMPv6, "fd99::1", "fd99::2", icmpError(1, ipv6(protoUDP, "fd99::2", "fd99::1", udp(51820, 51820, wgMessage(2, 92)))))))
	filter := Filter{Peer: netip.MustParseAddrPort("10.99.0.2:51820")}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Classify(b)
		if p.Len != len(b) {
			t.Fatalf("Len %d of a %d-byte frame", p.Len, len(b))
		}
		if err != nil {
			return
		}
		switch p.EtherType {
		case etherIPv4:
			if !p.Src.Is4() || !p.Dst.Is4() {
				t.Fatalf("IPv4 packet with addresses %v, %v", p.Src, p.Dst)
			}
		case etherIPv6:
			if !p.Src.Is6() || !p.Dst.Is6() {
				t.Fatalf("IPv6 packet with addresses %v, %v", p.Src, p.Dst)
			}
		}
		if p.WireGuard && p.Proto != protoUDP {
			t.Fatalf("WireGuard outside UDP: %v", p)
		}
		if p.QuotedWireGuard && (!p.icmpError() || !p.Quoted[0].IsValid() || p.Quoted[0].Addr().Is4() != (p.EtherType == etherIPv4)) {
			t.Fatalf("a WireGuard quote in %v, quoting %v", p, p.Quoted)
		}
		_ = filter.Leak(p)
		_ = p.String()
	})
}
