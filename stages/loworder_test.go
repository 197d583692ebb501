package stages

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pipeguard/noise"
)

// lowOrderKeys are the low-order points the kernel's selftest (netns.sh)
// sets as peers, in the base64 form `wg` takes.
var lowOrderKeys = []string{
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	"4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
	"X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
	"7P///////////////////////////////////////38=",
	"7f///////////////////////////////////////38=",
	"7v///////////////////////////////////////38=",
}

// TestLowOrderPeers: peers whose public keys are low-order points are
// taken, as the kernel takes them, each with one warning that names it.
// No handshake with them is attempted: with a persistent keepalive and
// a packet waiting, nothing goes to their endpoint, through every retry
// and a change of the private key, and each refused initiation is
// counted under low_order_key. The other peer is not disturbed.
func TestLowOrderPeers(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			clk := fakeClock()
			var logs lockedBuffer
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, clock: clk, log: slog.New(slog.NewTextHandler(&logs, nil))})
			sink := netip.MustParseAddrPort("192.0.2.9:1111")
			p.listen(sink) // what arrives here shows up in p.rx
			for i, s := range lowOrderKeys {
				pk, err := noise.ParsePublicKey(s)
				if err != nil {
					t.Fatal(err)
				}
				pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(i), 0}), 24)
				if err := e.tun.AddPeer(PeerConfig{PublicKey: pk, Endpoint: sink, AllowedIPs: []netip.Prefix{pfx}, PersistentKeepalive: time.Second}); err != nil {
					t.Fatalf("AddPeer(%s): %v", s, err)
				}
				if n := strings.Count(logs.String(), s); n != 1 {
					t.Fatalf("%d log lines name %s, want 1:\n%s", n, s, logs.String())
				}
			}
			if n := strings.Count(logs.String(), "low-order public key"); n != len(lowOrderKeys) {
				t.Fatalf("%d warnings, want one per peer:\n%s", n, logs.String())
			}

			// A packet for one of them waits; the keepalives and the
			// handshake retries fall due; nothing is sent.
			e.inject(t, ipv4(hostA.v4, netip.MustParseAddr("10.9.0.7"), 84, 1))
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropLowOrderKey) >= uint64(len(lowOrderKeys)) },
				func() string { return "refused initiations not counted\n" + fmtStats(e.tun.Stats()) })
			for range 5 {
				advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
				p.expectNothing(10 * time.Millisecond)
			}
			if n := dropsOf(e.tun.Stats(), DropLowOrderKey); n < uint64(6*len(lowOrderKeys)) {
				t.Errorf("%d refusals counted after five retries of %d peers\n%s", n, len(lowOrderKeys), fmtStats(e.tun.Stats()))
			}
			// Past PeerSilentAfter: nothing was sent, so no peer is
			// reported silent; the warning at AddPeer said it all.
			if strings.Contains(logs.String(), msgPeerSilent) {
				t.Errorf("a low-order peer was reported silent:\n%s", logs.String())
			}

			// A new private key: they stay, and stay refused.
			next := mustKey(t)
			if err := e.tun.SetPrivateKey(next); err != nil {
				t.Fatal(err)
			}
			advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
			p.expectNothing(10 * time.Millisecond)
			if n := len(e.tun.Peers()); n != 1+len(lowOrderKeys) {
				t.Fatalf("%d peers after the key change, want %d", n, 1+len(lowOrderKeys))
			}
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Fatalf("an error was logged:\n%s", logs.String())
			}

			// The genuine peer handshakes and exchanges data as ever.
			e.key = next
			p.attach(e)
			advance(e, clk, time.Second) // past the flood limit on initiations
			p.initiate()
			exchangeData(t, e, p, 2)
		})
	}
}
