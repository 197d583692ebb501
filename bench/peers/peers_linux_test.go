package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv/nsenvtest"
	"pipeguard/bench/core/svg"
)

// TestPeersQuick runs `bench --mode peers` with 1, 50 and 300 peers end
// to end: real namespaces, PipeGuard and wireguard-go started empty, wg
// setconf, dump, the real peer's pings and stream, one peer added and
// removed over the UAPI socket, a handshake burst, and addconf. It
// checks that every figure is there and plausible (times positive and
// under a generous bound, RSS above a running process's, bytes per peer
// from the smallest row on, PipeGuard's goroutines the same at every
// number of peers, every burst peer a session) and that nothing is left
// behind; it asserts no speed. About a minute.
func TestPeersQuick(t *testing.T) {
	nsenvtest.Require(t, usable())
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("starts six tunnels for a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const burst = 100
	r, err := Measure(ctx, Config{Peers: []int{300, 1, 50}, Idle: time.Second, Stream: 500 * time.Millisecond, Burst: burst,
		Out: core.Out{W: nsenvtest.Log{T: t}}})
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
			"add ms": row.AddMillis / 1000, "remove ms": row.RemoveMillis / 1000, "RTT ms": row.RTTMillis / 1000,
			"Gbit/s": row.StreamGbps, "burst all in s": row.Burst.AllSeconds} {
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
		if row.StreamDelivered == 0 || row.StreamDelivered > row.StreamSent {
			t.Errorf("%s with %d peers: stream %d sent, %d delivered", row.Impl, row.Peers, row.StreamSent, row.StreamDelivered)
		}
		if b := row.Burst; b.Peers != burst || b.Sessions != burst || b.MedianSeconds > b.AllSeconds || b.Retried < b.CookieRounds {
			t.Errorf("%s with %d peers: burst %+v, want all %d peers a session", row.Impl, row.Peers, b, burst)
		}
		if (row.Impl == ImplPipeGuard) != (row.Goroutines > 0) {
			t.Errorf("%s with %d peers: %d goroutines", row.Impl, row.Peers, row.Goroutines)
		}
		if rel := row.StreamRel * row.RTTRel; row.Peers == 1 && rel != 1 {
			t.Errorf("%s with 1 peer: relative figures %v, %v, want 1", row.Impl, row.StreamRel, row.RTTRel)
		}
	}
	// Goroutines do not grow with peers (one scrape's own may come and go).
	if g1, g300 := r.Rows[0].Goroutines, r.Rows[2].Goroutines; g300 > g1+2 {
		t.Errorf("PipeGuard: %d goroutines with 1 peer, %d with 300", g1, g300)
	}
	for _, want := range []string{"keepalive CPU %", "goroutines", "Gbit/s", "cookie rounds", "pipeguard"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	// The JSON holds the same, and the chart draws.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON round trip: %v\n%+v\n%+v", err, back, r)
	}
	var chart bytes.Buffer
	if err := svg.Write(&chart, r.Chart(core.Machine{})); err != nil || !bytes.Contains(chart.Bytes(), []byte("wg setconf")) {
		t.Errorf("chart: %v", err)
	}
}
