package noise

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"pipeguard/wire"
)

// These tests run a PipeGuard noise peer, driven by hand, against a
// wireguard-go device, an independent implementation, in memory.

var (
	ourAddr    = netip.MustParseAddrPort("192.0.2.1:51820") // PipeGuard's endpoint
	devAddr    = netip.MustParseAddrPort("192.0.2.2:51821") // the device's
	ourInnerIP = netip.MustParseAddr("10.0.0.1")            // in the device's allowed_ips for us
	devInnerIP = netip.MustParseAddr("10.0.0.2")
)

// wgPeer is a wireguard-go device set up with us as its only peer, and
// our side of it.
type wgPeer struct {
	dev   *device.Device
	tun   *tuntest.ChannelTUN
	bind  *memBind
	us    *side
	check *CookieChecker
}

func newWGPeer(t *testing.T, psk PresharedKey) *wgPeer {
	t.Helper()
	// Goroutines alive now are not the device's; take the list before it
	// starts, not in the cleanup (which would ignore the device's too).
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	devKey, _ := GeneratePrivateKey()
	us := &side{static: newStatic(t)}
	var err error
	if us.hs, err = NewHandshake(us.static, devKey.Public(), psk, 1); err != nil {
		t.Fatal(err)
	}
	p := &wgPeer{tun: tuntest.NewChannelTUN(), bind: newMemBind(ourAddr), us: us, check: NewCookieChecker(us.static)}
	p.dev = device.NewDevice(p.tun.TUN(), p.bind, device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(p.dev.Close)
	pub := us.static.PublicKey()
	cfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=%s\nallowed_ip=%s/32\n",
		hex.EncodeToString(devKey[:]), devAddr.Port(), hex.EncodeToString(pub[:]), ourAddr, ourInnerIP)
	if !psk.IsZero() {
		cfg += "preshared_key=" + hex.EncodeToString(psk[:]) + "\n"
	}
	if err := p.dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.dev.Up(); err != nil {
		t.Fatal(err)
	}
	return p
}

// next returns the next datagram of type typ the device sends, skipping
// others (keepalives, retransmissions).
func (p *wgPeer) next(t *testing.T, typ wire.MessageType, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case d := <-p.bind.sent:
			if got, err := wire.PeekType(d); err == nil && got == typ {
				if typ == wire.TypeTransport && len(d) == wire.MinTransportSize {
					continue // a keepalive
				}
				return d
			}
		case <-deadline:
			t.Fatalf("no message of type %d from the device within %v", typ, timeout)
		}
	}
}

// ipPacket makes an IPv4/UDP packet of n bytes in all, with a payload
// that differs per call.
func ipPacket(src, dst netip.Addr, n int, seed byte) []byte {
	b := make([]byte, n)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	b[8], b[9] = 64, 17
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	for i := 20; i < n; i++ {
		b[i] = seed + byte(i)
	}
	return b
}

// toDevice seals an inner packet with our keypair, injects it, and checks
// the device writes exactly it to its TUN.
func (p *wgPeer) toDevice(t *testing.T, kp *Keypair, inner []byte) {
	t.Helper()
	var pkt wire.Packet
	if err := pkt.SetInner(inner); err != nil {
		t.Fatal(err)
	}
	if _, err := kp.Seal(&pkt); err != nil {
		t.Fatal(err)
	}
	p.bind.inject(t, pkt.Message())
	select {
	case got := <-p.tun.Inbound:
		if !bytes.Equal(got, inner) {
			t.Fatalf("device delivered %d bytes that differ from the %d sent", len(got), len(inner))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("device did not deliver our packet")
	}
}

// writeTUN hands the device an outbound packet.
func (p *wgPeer) writeTUN(t *testing.T, inner []byte) {
	t.Helper()
	select {
	case p.tun.Outbound <- inner:
	case <-time.After(5 * time.Second):
		t.Fatal("device does not read its TUN")
	}
}

// fromDevice opens a transport datagram of the device with our keypair
// and checks it carries exactly inner (plus WireGuard's zero padding).
func fromDevice(t *testing.T, kp *Keypair, d, inner []byte) {
	t.Helper()
	h, err := wire.ParseTransportHeader(d)
	if err != nil || h.Receiver != kp.LocalIndex {
		t.Fatalf("transport header %+v, %v; want receiver %d", h, err, kp.LocalIndex)
	}
	var pkt wire.Packet
	if err := pkt.SetMessage(d); err != nil {
		t.Fatal(err)
	}
	if err := kp.Open(&pkt, h.Counter); err != nil {
		t.Fatalf("Open: %v", err)
	}
	got := pkt.Inner()
	if len(got) != wire.PaddedLen(len(inner)) || !bytes.Equal(got[:len(inner)], inner) || !isZero(got[len(inner):]) {
		t.Fatalf("device sent %d bytes, want %d padded to %d", len(got), len(inner), wire.PaddedLen(len(inner)))
	}
}

// exchangeBoth sends packets of several sizes both ways.
func (p *wgPeer) exchangeBoth(t *testing.T, kp *Keypair, weSendFirst bool) {
	t.Helper()
	sizes := []int{20, 61, 576, wire.MaxInnerSize}
	send := func() {
		for i, n := range sizes {
			p.toDevice(t, kp, ipPacket(ourInnerIP, devInnerIP, n, byte(i)))
		}
	}
	if weSendFirst {
		send() // a responder's keypair is confirmed by the initiator's first packet
	}
	for i, n := range sizes {
		inner := ipPacket(devInnerIP, ourInnerIP, n, byte(100+i))
		p.writeTUN(t, inner)
		fromDevice(t, kp, p.next(t, wire.TypeTransport, 5*time.Second), inner)
	}
	if !weSendFirst {
		send()
	}
}

// respondTo runs our responder on the initiation d from the device.
func (p *wgPeer) respondTo(t *testing.T, d []byte, underLoad bool) (*Keypair, error) {
	t.Helper()
	now := time.Now()
	var cr wire.CookieReply
	src, _ := devAddr.MarshalBinary()
	if err := p.check.Admit(d, src, underLoad, now, &cr); err != nil {
		if errors.Is(err, ErrCookieRequired) {
			var b [wire.CookieReplySize]byte
			cr.Marshal(&b)
			p.bind.inject(t, b[:])
		}
		return nil, err
	}
	h, err := p.us.static.ConsumeInitiation(d, now, p.us.lookup)
	if err != nil {
		t.Fatalf("ConsumeInitiation: %v", err)
	}
	var msg wire.Response
	kp, err := h.CreateResponse(now, &p.us.table, &msg)
	if err != nil {
		t.Fatalf("CreateResponse: %v", err)
	}
	var b [wire.ResponseSize]byte
	msg.Marshal(&b)
	p.bind.inject(t, b[:])
	return kp, nil
}

var interopPSKs = []struct {
	name string
	psk  PresharedKey
}{{"no psk", PresharedKey{}}, {"psk", PresharedKey{0: 0xa5, 17: 3, 31: 0x5a}}}

func TestInteropResponder(t *testing.T) {
	for _, tc := range interopPSKs {
		t.Run(tc.name, func(t *testing.T) {
			p := newWGPeer(t, tc.psk)
			first := ipPacket(devInnerIP, ourInnerIP, 84, 7)
			p.writeTUN(t, first) // makes the device initiate
			kp, err := p.respondTo(t, p.next(t, wire.TypeInitiation, 5*time.Second), false)
			if err != nil {
				t.Fatal(err)
			}
			if kp.Initiator {
				t.Fatal("responder keypair marked initiator")
			}
			// The device sends the packet that started it all first.
			fromDevice(t, kp, p.next(t, wire.TypeTransport, 5*time.Second), first)
			p.exchangeBoth(t, kp, false)
		})
	}
}

func TestInteropInitiator(t *testing.T) {
	for _, tc := range interopPSKs {
		t.Run(tc.name, func(t *testing.T) {
			p := newWGPeer(t, tc.psk)
			now := time.Now()
			var msg wire.Initiation
			if err := p.us.hs.CreateInitiation(now, &p.us.table, &msg); err != nil {
				t.Fatal(err)
			}
			var b [wire.InitiationSize]byte
			msg.Marshal(&b)
			p.bind.inject(t, b[:])

			r := p.next(t, wire.TypeResponse, 5*time.Second)
			var cr wire.CookieReply
			src, _ := devAddr.MarshalBinary()
			if err := p.check.Admit(r, src, false, now, &cr); err != nil {
				t.Fatal(err)
			}
			_, kp, err := p.us.static.ConsumeResponse(r, now, &p.us.table)
			if err != nil {
				t.Fatalf("ConsumeResponse: %v", err)
			}
			if !kp.Initiator {
				t.Fatal("initiator keypair not marked so")
			}
			p.exchangeBoth(t, kp, true)
		})
	}
}

// TestInteropCookie: our responder is under load, so it answers the
// device's first initiation with a cookie reply; wireguard-go retries
// after RekeyTimeout (about 5 s) with a MAC2 made from the cookie, and
// that initiation is admitted.
func TestInteropCookie(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for wireguard-go's 5 s handshake retry")
	}
	p := newWGPeer(t, PresharedKey{})
	first := ipPacket(devInnerIP, ourInnerIP, 100, 1)
	p.writeTUN(t, first)
	d := p.next(t, wire.TypeInitiation, 5*time.Second)
	if !isZero(d[wire.InitiationMAC2Offset:]) {
		t.Fatal("first initiation already has MAC2")
	}
	if _, err := p.respondTo(t, d, true); !errors.Is(err, ErrCookieRequired) {
		t.Fatalf("under load without MAC2: %v", err)
	}
	d = p.next(t, wire.TypeInitiation, RekeyTimeout+RekeyTimeoutJitterMax+3*time.Second)
	kp, err := p.respondTo(t, d, true)
	if err != nil {
		t.Fatalf("retry with MAC2: %v", err)
	}
	fromDevice(t, kp, p.next(t, wire.TypeTransport, 5*time.Second), first)
	p.exchangeBoth(t, kp, false)
}
