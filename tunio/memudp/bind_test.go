package memudp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestBindWireGuardPair runs two wireguard-go devices over memudp Binds and
// sends a ping each way: the handshake and the transport data both cross
// the in-memory network, which is what proves the adapter.
func TestBindWireGuardPair(t *testing.T) {
	n := NewNetwork()
	var priv, pub [2][32]byte
	for i := range priv {
		rand.Read(priv[i][:])
		p, err := curve25519.X25519(priv[i][:], curve25519.Basepoint)
		if err != nil {
			t.Fatal(err)
		}
		copy(pub[i][:], p)
	}
	outer := [2]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::2")}
	inner := [2]netip.Addr{netip.MustParseAddr("1.0.0.1"), netip.MustParseAddr("1.0.0.2")}
	var tuns [2]*tuntest.ChannelTUN
	for i := range 2 {
		tuns[i] = tuntest.NewChannelTUN()
		dev := device.NewDevice(tuns[i].TUN(), NewBind(n, outer[i]), device.NewLogger(device.LogLevelError, fmt.Sprintf("dev%d: ", i)))
		t.Cleanup(dev.Close)
		cfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=%s/32\nendpoint=%s\n",
			hex.EncodeToString(priv[i][:]), 51820+i, hex.EncodeToString(pub[1-i][:]),
			inner[1-i], netip.AddrPortFrom(outer[1-i], uint16(51820+1-i)))
		if err := dev.IpcSet(cfg); err != nil {
			t.Fatal(err)
		}
		if err := dev.Up(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		from, to := i, 1-i
		msg := tuntest.Ping(inner[to], inner[from])
		tuns[from].Outbound <- msg
		select {
		case got := <-tuns[to].Inbound:
			if !bytes.Equal(got, msg) {
				t.Fatalf("ping %d→%d arrived changed", from, to)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d→%d did not arrive (network dropped %d)", from, to, n.Dropped())
		}
	}
}
