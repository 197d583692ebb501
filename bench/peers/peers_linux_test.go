package peers

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv/nsenvtest"
)

// TestPeersQuick runs `bench --mode peers` with 1, 50 and 300 peers end
// to end: real namespaces, PipeGuard and wireguard-go started empty, wg
// setconf, dump, addconf, and one peer added and removed over the UAPI
// socket. It checks that every figure is there and plausible (times
// positive and under a generous bound, RSS above a running process's,
// bytes per peer from the smallest row on) and that nothing is left
// behind; it asserts no speed. About 30 s.
func TestPeersQuick(t *testing.T) {
	nsenvtest.Require(t, usable())
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("starts six tunnels for half a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := Measure(ctx, Config{Peers: []int{300, 1, 50}, Idle: time.Second, Out: core.Out{W: nsenvtest.Log{T: t}}})
	nsenvtest.AssertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	r.WriteTable(&table)
	t.Logf("\n%s", table.String())
	if len(r.Rows) != 6 {
		t.Fatalf("%d rows, want 6 (two implementations at 1, 50 and 300 peers)", len(r.Rows))
	}
	for i, row := range r.Rows {
		wantImpl, wantPeers := []string{ImplPipeGuard, ImplWireguardGo}[i/3], []int{1, 50, 300}[i%3]
		if row.Impl != wantImpl || row.Peers != wantPeers || row.Refused {
			t.Errorf("row %d is %s with %d peers (refused %v), want %s with %d", i, row.Impl, row.Peers, row.Refused, wantImpl, wantPeers)
		}
		for name, v := range map[string]float64{"setconf s": row.SetconfSeconds, "dump s": row.DumpSeconds,
			"add ms": row.AddMillis / 1000, "remove ms": row.RemoveMillis / 1000} {
			if v <= 0 || v > 60 {
				t.Errorf("%s with %d peers: %s %v", row.Impl, row.Peers, name, v)
			}
		}
		if row.RSSBytes < 4<<20 || row.Threads < 2 {
			t.Errorf("%s with %d peers: RSS %d bytes, %d threads: not a running tunnel", row.Impl, row.Peers, row.RSSBytes, row.Threads)
		}
		if row.IdleCPUPercent < 0 || row.KeepaliveCPUPercent < 0 {
			t.Errorf("%s with %d peers: CPU %v%%, %v%%", row.Impl, row.Peers, row.IdleCPUPercent, row.KeepaliveCPUPercent)
		}
		if (row.Peers == 1) != (row.BytesPerPeer == 0) && row.RSSBytes > r.Rows[i-i%3].RSSBytes {
			t.Errorf("%s with %d peers: %v bytes per peer", row.Impl, row.Peers, row.BytesPerPeer)
		}
	}
	if !strings.Contains(table.String(), "keepalive CPU %") || !strings.Contains(table.String(), "pipeguard") {
		t.Errorf("table lacks its columns:\n%s", table.String())
	}
}
