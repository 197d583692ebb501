package peers

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pipeguard/noise"
)

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		in           Config
		peers        []int
		idle, stream time.Duration
		burst        int
	}{
		{Config{}, DefaultPeers, DefaultIdle, DefaultStream, DefaultBurst},
		{Config{Quick: true}, QuickPeers, QuickIdle, QuickStream, QuickBurst},
		{Config{Peers: []int{1000, 1, 1000}, Idle: 3 * time.Second, Stream: 5 * time.Second, Burst: 7}, []int{1, 1000}, 3 * time.Second, 5 * time.Second, 7},
	} {
		c := tc.in.WithDefaults()
		if !slices.Equal(c.Peers, tc.peers) || c.Idle != tc.idle || c.Stream != tc.stream || c.Burst != tc.burst || c.Repeat != 1 {
			t.Errorf("%+v: %+v; want peers %v, idle %v, stream %v, burst %d, one repeat", tc.in, c, tc.peers, tc.idle, tc.stream, tc.burst)
		}
	}
}

// TestTable: bytes per peer and the traffic ratios count from each
// implementation's smallest row; a refused row says so in every cell of
// both tables; repeats are medians.
func TestTable(t *testing.T) {
	rows := func(scale float64) []Row {
		return []Row{
			{Impl: ImplPipeGuard, Peers: 1, RSSBytes: 20 << 20, SetconfSeconds: 0.01 * scale, StreamGbps: 2, RTTMillis: 0.1, Goroutines: 23},
			{Impl: ImplPipeGuard, Peers: 100_001, RSSBytes: 20<<20 + 100_000*1200, SetconfSeconds: 1.5 * scale, StreamGbps: 1.9 * scale, RTTMillis: 0.12,
				Goroutines: 23, Burst: BurstResult{Peers: 1000, Sessions: 1000, AllSeconds: 0.98, MedianSeconds: 0.5}},
			{Impl: ImplWireguardGo, Peers: 1, RSSBytes: 10 << 20, StreamGbps: 1, RTTMillis: 0.2},
			{Impl: ImplWireguardGo, Peers: 100_000, Refused: true},
		}
	}
	r := &Report{IdleSeconds: 10, StreamSeconds: 3, Burst: 1000, WireguardGo: "v1", Revision: "abc",
		Runs: [][]Row{rows(1), rows(3), rows(0.5)}}
	for _, run := range r.Runs {
		relative(run)
	}
	r.Rows = medianRows(r.Runs)
	relative(r.Rows)
	if got := r.Rows[1].BytesPerPeer; got != 1200 {
		t.Errorf("bytes per peer %v, want 1200", got)
	}
	if got := r.Rows[1].SetconfSeconds; got != 1.5 {
		t.Errorf("setconf %v, want the median 1.5", got)
	}
	if got := r.Rows[1].StreamRel; got < 0.949 || got > 0.951 {
		t.Errorf("stream relative to the fewest peers %v, want 0.95", got)
	}
	if got := r.Rows[1].RTTRel; got < 1.199 || got > 1.201 {
		t.Errorf("RTT relative to the fewest peers %v, want 1.2", got)
	}
	if r.Rows[0].BytesPerPeer != 0 || r.Rows[3].BytesPerPeer != 0 || r.Rows[0].StreamRel != 1 {
		t.Errorf("base and refused rows: %+v, %+v", r.Rows[0], r.Rows[3])
	}
	var b strings.Builder
	r.WriteTable(&b)
	out := b.String()
	for _, want := range []string{"pipeguard     100001", "1200", "refused", "1.500", "0.95", "1.20", "0.98", "goroutines", "cookie rounds"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "refused") != 20 {
		t.Errorf("a refused row should say so in its 10 figure cells of each table:\n%s", out)
	}
}

// TestPeersConf: the real peer first, then each key with its own
// addresses and an endpoint; the keepalive change names every other key.
func TestPeersConf(t *testing.T) {
	keys := randomKeys(70_000)
	conf := string(peersConf(noise.PrivateKey{1}, 51820, noise.PublicKey{2}, netip.MustParseAddr("10.202.0.2"),
		netip.MustParseAddrPort("10.201.0.2:51900"), keys))
	if n := strings.Count(conf, "[Peer]"); n != len(keys)+1 {
		t.Fatalf("%d peers, want %d", n, len(keys)+1)
	}
	for _, want := range []string{"ListenPort = 51820\n", "AllowedIPs = 10.202.0.2/32\nEndpoint = 10.201.0.2:51900\n",
		"AllowedIPs = 10.1.17.111/32, fd01::1:116f/128\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	ka := string(keepaliveConf(keys[:5]))
	if strings.Count(ka, "PersistentKeepalive = 25") != 3 || !strings.Contains(ka, keys[4].String()) || strings.Contains(ka, keys[1].String()) {
		t.Errorf("keepalive change:\n%s", ka)
	}
	add, rm := peerList(keys[:2], false), peerList(keys[:2], true)
	if strings.Count(add, "public_key=") != 2 || strings.Contains(add, "remove") || strings.Count(rm, "remove=true") != 2 || !strings.HasSuffix(rm, "\n\n") {
		t.Errorf("peer lists:\n%s\n%s", add, rm)
	}
}

func TestMetricValue(t *testing.T) {
	text := "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 23\ngo_goroutines_other 5\npipeguard_peers 7\n"
	if v, err := metricValue(text, "go_goroutines"); err != nil || v != 23 {
		t.Errorf("go_goroutines = %v, %v", v, err)
	}
	for name, bad := range map[string]string{
		"missing":  "pipeguard_peers 7\n",
		"no value": "go_goroutines x\n",
		"repeated": "go_goroutines 1\ngo_goroutines 2\n",
	} {
		if _, err := metricValue(bad, "go_goroutines"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzMetricValue: any text is safe; a value found is the one on a line
// of the metric's name.
func FuzzMetricValue(f *testing.F) {
	f.Add("go_goroutines 23\n")
	f.Add("# HELP go_goroutines x\ngo_goroutines 1e3\n")
	f.Add("go_goroutines\n")
	f.Fuzz(func(t *testing.T, text string) {
		v, err := metricValue(text, "go_goroutines")
		if err == nil && !strings.Contains(text, "go_goroutines ") {
			t.Fatalf("value %v from text without the metric: %q", v, text)
		}
	})
}
