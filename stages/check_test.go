package stages

import (
	"errors"
	"net/netip"
	"testing"

	"pipeguard/noise"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// TestConfigCheck: Check refuses what New refuses, without a device.
func TestConfigCheck(t *testing.T) {
	priv, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := noise.GeneratePrivateKey()
	lowOrder := noise.PublicKey{1} // u = 1, a point of order 4: "AQAAAA…AAA="
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"good", Config{PrivateKey: priv, Peers: []PeerConfig{{PublicKey: good.Public()}}}, nil},
		{"no private key (a tunnel waiting for one)", Config{Peers: []PeerConfig{{PublicKey: good.Public()}}}, nil},
		// Taken, as the kernel takes them; the config file's parser
		// refuses them.
		{"low-order peer key, no private key", Config{Peers: []PeerConfig{{PublicKey: lowOrder}}}, nil},
		{"low-order peer key", Config{PrivateKey: priv, Peers: []PeerConfig{{PublicKey: good.Public()}, {PublicKey: lowOrder}}}, nil},
		{"zero peer key", Config{PrivateKey: priv, Peers: []PeerConfig{{}}}, nil},
		{"peer twice", Config{PrivateKey: priv, Peers: []PeerConfig{{PublicKey: good.Public()}, {PublicKey: good.Public()}}}, ErrPeerExists},
		{"workers", Config{PrivateKey: priv, Workers: 1000}, ErrConfig},
	} {
		err := tc.cfg.Check()
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Check: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want != nil {
			// New refuses the same config (with no device: it fails
			// before touching one).
			dev, err := memtun.New(memtun.Config{})
			if err != nil {
				t.Fatal(err)
			}
			udp, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := New(tc.cfg, dev, udp, nil, testLog(t)); err == nil {
				t.Errorf("%s: New accepted what Check refused", tc.name)
			}
		}
	}
}
