package main

import (
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"pipeguard/cmd/headless-client/config"
)

const (
	priv = "2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY="
	peer = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	psk  = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
)

func hexOfB64(t *testing.T, s string) string {
	t.Helper()
	k, err := config.Parse("k", []byte("[Interface]\nPrivateKey = "+s+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(k.Interface.PrivateKey[:])
}

// TestIPCConfigAcceptedByWireguardGo hands the generated configuration to
// a real wireguard-go device (on in-memory TUN and bind) and reads back
// what it took.
func TestIPCConfigAcceptedByWireguardGo(t *testing.T) {
	cfg, err := config.Parse("p.conf", []byte(`[Interface]
PrivateKey = `+priv+`
ListenPort = 51820
[Peer]
PublicKey = `+peer+`
PresharedKey = `+psk+`
Endpoint = peer.example:4242
AllowedIPs = 10.0.0.2/32, fd00::2/128
PersistentKeepalive = 25
`))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if host != "peer.example" {
			return nil, errors.New("no such host")
		}
		return []netip.Addr{netip.MustParseAddr("192.0.2.7")}, nil
	}
	ipc, err := ipcConfig(context.Background(), cfg, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ipc, "endpoint=192.0.2.7:4242\n") {
		t.Errorf("endpoint not resolved:\n%s", ipc)
	}
	dev := device.NewDevice(tuntest.NewChannelTUN().TUN(), bindtest.NewChannelBinds()[0], device.NewLogger(device.LogLevelSilent, ""))
	defer dev.Close()
	if err := dev.IpcSet(ipc); err != nil {
		t.Fatalf("wireguard-go refused the configuration: %v\n%s", err, ipc)
	}
	got, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"private_key=" + hexOfB64(t, priv), "public_key=" + hexOfB64(t, peer), "preshared_key=" + hexOfB64(t, psk),
		"allowed_ip=10.0.0.2/32", "allowed_ip=fd00::2/128", "persistent_keepalive_interval=25",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("device lacks %q:\n%s", want, got)
		}
	}
}

func TestIPCConfigEndpointErrors(t *testing.T) {
	cfg, err := config.Parse("p.conf", []byte("[Interface]\nPrivateKey = "+priv+"\n[Peer]\nPublicKey = "+peer+"\nEndpoint = nowhere.example:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	fail := func(context.Context, string, string) ([]netip.Addr, error) { return nil, errors.New("no such host") }
	if _, err := ipcConfig(context.Background(), cfg, fail); !errors.Is(err, config.ErrBadEndpoint) || !strings.Contains(err.Error(), "p.conf:5") {
		t.Fatalf("error %v, want ErrBadEndpoint at p.conf:5", err)
	}
}
