package peers

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		in    Config
		peers []int
		idle  time.Duration
	}{
		{Config{}, DefaultPeers, DefaultIdle},
		{Config{Quick: true}, QuickPeers, QuickIdle},
		{Config{Peers: []int{1000, 1, 1000}, Idle: 3 * time.Second}, []int{1, 1000}, 3 * time.Second},
	} {
		c := tc.in.WithDefaults()
		if !slices.Equal(c.Peers, tc.peers) || c.Idle != tc.idle {
			t.Errorf("%+v: peers %v, idle %v; want %v, %v", tc.in, c.Peers, c.Idle, tc.peers, tc.idle)
		}
	}
}

// TestTable: bytes per peer count from each implementation's smallest
// row; a refused row says so in every cell.
func TestTable(t *testing.T) {
	r := &Report{IdleSeconds: 10, WireguardGo: "v1", Revision: "abc", Rows: []Row{
		{Impl: ImplPipeGuard, Peers: 1, RSSBytes: 20 << 20, SetconfSeconds: 0.01},
		{Impl: ImplPipeGuard, Peers: 100_001, RSSBytes: 20<<20 + 100_000*1200, SetconfSeconds: 1.5},
		{Impl: ImplWireguardGo, Peers: 1, RSSBytes: 10 << 20},
		{Impl: ImplWireguardGo, Peers: 100_000, Refused: true},
	}}
	perPeer(r.Rows)
	if got := r.Rows[1].BytesPerPeer; got != 1200 {
		t.Errorf("bytes per peer %v, want 1200", got)
	}
	if r.Rows[0].BytesPerPeer != 0 || r.Rows[3].BytesPerPeer != 0 {
		t.Errorf("bytes per peer in the base and refused rows: %v, %v", r.Rows[0].BytesPerPeer, r.Rows[3].BytesPerPeer)
	}
	var b strings.Builder
	r.WriteTable(&b)
	out := b.String()
	for _, want := range []string{"pipeguard     100001", "1200", "refused", "1.500"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "refused") != 9 {
		t.Errorf("a refused row should say so in its 9 figure cells:\n%s", out)
	}
}
