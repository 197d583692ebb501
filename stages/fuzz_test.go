package stages

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
	"pipeguard/wire"
)

// The whole-path fuzz target: random datagrams into a running tunnel with
// an established peer, through every stage. Each input is a list of
// records, [kind][length][bytes...], each of which becomes one datagram:
//
//	kind%8  datagram
//	0       the bytes as they are
//	1       a transport header for the live session (its receiver index,
//	        the counter from the bytes) and the rest as ciphertext
//	2       the bytes sealed by the peer as the inner packet: authentic
//	3       a UDP-in-IPv4 packet from the peer's address to the tunnel's,
//	        the bytes as its payload (the first two, with kind&0x40, XORed
//	        into its total length), sealed by the peer
//	4, 5    an initiation or a response, the bytes as its body, with a
//	        valid MAC1: through the cookie gate to the Curve25519 work
//	6       a cookie reply to the session's index, the bytes as its body
//	7       the last authentic datagram of this input again: a replay
//
// With kind&0x80 the length byte counts 8-byte units. An input makes at
// most fuzzDatagrams datagrams.
const fuzzDatagrams = 64

// fuzzTunnel is the tunnel one fuzzing process feeds, made once.
type fuzzTunnel struct {
	net     *memudp.Network
	e       *end
	p       *rawPeer
	written atomic.Uint64 // inner packets the tunnel wrote to its TUN
	mac1    noise.CookieGenerator
}

func newFuzzTunnel(f *testing.F) *fuzzTunnel {
	ft := &fuzzTunnel{}
	// A network that drops rather than blocks: the peer does not read what
	// the tunnel answers (cookie replies, responses), and must not stall it.
	net := memudp.NewNetworkConfig(memudp.Config{})
	ft.net = net
	p, pc := newRawPeer(f, net, netip.MustParseAddrPort("192.0.2.2:51820"), hostB)
	ft.e = startTunnel(f, net, tunnelSpec{udp: netip.MustParseAddrPort("192.0.2.1:51820"), inner: hostA.v4, workers: 2,
		clock: fakeClock(), peers: []PeerConfig{pc}, dev: memtun.Config{OnWrite: func([]byte) { ft.written.Add(1) }}})
	p.attach(ft.e)
	p.initiate()
	ft.p = p
	ft.mac1.Init(ft.e.key.Public())
	return ft
}

// datagrams decodes an input as the table above says.
func (ft *fuzzTunnel) datagrams(in []byte) [][]byte {
	var out [][]byte
	var lastAuthentic []byte
	for len(in) >= 2 && len(out) < fuzzDatagrams {
		kind, n := in[0], int(in[1])
		if kind&0x80 != 0 {
			n *= 8
		}
		in = in[2:]
		data := in[:min(n, len(in))]
		in = in[len(data):]
		var d []byte
		switch kind % 8 {
		case 0:
			d = append(make([]byte, 0, len(data)), data[:min(len(data), memudp.DefaultMaxDatagramSize)]...)
		case 1:
			d = make([]byte, wire.TransportHeaderSize+len(data))
			h := wire.TransportHeader{Receiver: ft.p.kp.RemoteIndex}
			if len(data) >= 8 {
				h.Counter = binary.LittleEndian.Uint64(data)
			}
			h.Marshal(d)
			copy(d[wire.TransportHeaderSize:], data)
		case 2:
			d = ft.seal(data[:min(len(data), wire.MaxInnerSize)])
			lastAuthentic = d
		case 3:
			const udpHeader = 28 // IPv4 and UDP, as ipv4 builds them
			payload := data[:min(len(data), wire.MaxInnerSize-udpHeader)]
			pkt := ipv4(hostB.v4, hostA.v4, udpHeader+len(payload), 0)
			copy(pkt[udpHeader:], payload)
			if kind&0x40 != 0 && len(data) >= 2 {
				pkt[2] ^= data[0]
				pkt[3] ^= data[1]
			}
			d = ft.seal(pkt)
			lastAuthentic = d
		case 4, 5:
			size, typ := wire.InitiationSize, wire.TypeInitiation
			if kind%8 == 5 {
				size, typ = wire.ResponseSize, wire.TypeResponse
			}
			d = make([]byte, size)
			copy(d[4:], data)
			d[0] = byte(typ)
			ft.mac1.AddMACs(d, time.Now())
		case 6:
			d = make([]byte, wire.CookieReplySize)
			copy(d[8:], data)
			d[0] = byte(wire.TypeCookieReply)
			binary.LittleEndian.PutUint32(d[4:], ft.p.kp.RemoteIndex)
		case 7:
			d = lastAuthentic
			if d == nil {
				d = append(make([]byte, 0, len(data)), data...)
			}
		}
		out = append(out, d)
	}
	return out
}

// seal seals inner with the peer's session, as the peer would send it.
func (ft *fuzzTunnel) seal(inner []byte) []byte {
	var pkt wire.Packet
	pkt.SetInner(inner) // at most MaxInnerSize: the caller cut it
	if _, err := ft.p.kp.Seal(&pkt); err != nil {
		panic(err) // a fresh session has 2^64 counters
	}
	return append([]byte(nil), pkt.Message()...)
}

// accounted is how many datagrams the tunnel has finished with: dropped
// by some stage, by its socket or by the network, taken by the handshake workers, taken as
// a keepalive, or written to the TUN. Stages publish their counts before
// they wait, so once the tunnel is idle this is exact.
func (ft *fuzzTunnel) accounted() (n uint64, ss []StageStats) {
	ss = ft.e.tun.Stats()
	for _, s := range ss {
		n += s.TotalDrops()
		switch s.Name {
		case "handshake":
			n += s.Packets
		case "route-in", "inbound":
			n += s.Keepalives
		}
	}
	return n + ft.written.Load() + ft.e.conn.Dropped() + ft.net.Dropped(), ss
}

// FuzzTunnelDatagrams sends each input's datagrams from the peer's
// address into the running tunnel and waits until the tunnel has
// accounted for every one: none may be lost without a count, panic a
// stage or make one restart.
func FuzzTunnelDatagrams(f *testing.F) {
	ft := newFuzzTunnel(f)
	f.Add([]byte{})
	f.Add([]byte{0, 4, 1, 0, 0, 0})                                      // a bare initiation type
	f.Add([]byte{1, 16, 7, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}) // forged transport
	f.Add([]byte{3, 8, 'h', 'e', 'l', 'l', 'o', '!', '!', '!', 7, 0})    // data, then its replay
	f.Add([]byte{2, 3, 0x60, 0, 0, 3, 0})                                // an inner IPv6 stub, then a keepalive
	f.Add([]byte{4, 32, 0xff, 5, 32, 0xee, 6, 40})                       // handshake messages with MAC1
	f.Add([]byte{0xc3, 100, 0xff, 0xff})                                 // an IPv4 packet whose length lies
	f.Fuzz(func(t *testing.T, in []byte) {
		dgrams := ft.datagrams(in)
		before, _ := ft.accounted()
		msgs := make([]tunio.Datagram, len(dgrams))
		for i, d := range dgrams {
			msgs[i] = tunio.Datagram{Buf: d, N: len(d), Addr: ft.e.udp}
		}
		if err := ft.p.conn.WriteBatch(msgs); err != nil {
			t.Fatal(err)
		}
		want := before + uint64(len(dgrams))
		var got uint64
		var ss []StageStats
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Microsecond) {
			if got, ss = ft.accounted(); got >= want || time.Now().After(deadline) {
				break
			}
		}
		var restarts uint64
		for _, s := range ss {
			restarts += s.Restarts
		}
		if restarts > 0 || dropsOf(ss, DropPanic) > 0 {
			t.Fatalf("a stage failed on this input:\n%s", fmtStats(ss))
		}
		if got != want {
			t.Fatalf("%d datagrams sent, %d accounted for (socket drops %d, network drops %d, written %d):\n%s",
				len(dgrams), int64(got-before), ft.e.conn.Dropped(), ft.net.Dropped(), ft.written.Load(), fmtStats(ss))
		}
	})
}
