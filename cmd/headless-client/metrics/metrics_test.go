package metrics

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// fakeSource is a Source with fixed figures.
type fakeSource struct {
	stats []stages.StageStats
	peers []stages.PeerStatus
}

func (f *fakeSource) Stats() []stages.StageStats { return f.stats }
func (f *fakeSource) AllPeers() iter.Seq[stages.PeerStatus] {
	return slices.Values(f.peers)
}

var (
	keyA = noise.PublicKey{1, 2, 3}
	keyB = noise.PublicKey{0xff, 0xfe}
	// A stage name that needs every escape a label value has.
	oddStage = "odd \"stage\"\\\nname"
)

func newFake() *fakeSource {
	return &fakeSource{
		stats: []stages.StageStats{
			{Name: "udprecv", Instances: 1, Packets: 1000, Bytes: 1_312_000, Drops: map[stages.DropReason]uint64{stages.DropMalformed: 3}},
			{Name: "decrypt", Instances: 2, Packets: 990, Bytes: 1_267_200, QueueDepth: 7, QueueCap: 2000, Restarts: 1,
				Drops: map[stages.DropReason]uint64{stages.DropAuth: 5, stages.DropReplay: 2}},
			{Name: oddStage, Instances: 1, Keepalives: 4, Drops: map[stages.DropReason]uint64{}},
		},
		peers: []stages.PeerStatus{
			{PublicKey: keyA, LastHandshake: time.Unix(1795610803, 500_000_000), RxBytes: 123 + 92, TxBytes: 456 + 148, RxHandshakeBytes: 92, TxHandshakeBytes: 148,
				Handshakes: 3},
			{PublicKey: keyB}, // never shook hands
		},
	}
}

func TestExposition(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, newFake()); err != nil {
		t.Fatal(err)
	}
	if esc := `stage="odd \"stage\"\\\nname"`; !strings.Contains(b.String(), esc) {
		t.Errorf("no escaped label %s in:\n%s", esc, b.String())
	}
	got := parseStrict(t, b.String())
	want := map[string]float64{
		`pipeguard_stage_instances{stage="decrypt"}`:                        2,
		`pipeguard_stage_packets_total{stage="udprecv"}`:                    1000,
		`pipeguard_stage_bytes_total{stage="decrypt"}`:                      1_267_200,
		`pipeguard_stage_drops_total{reason="malformed",stage="udprecv"}`:   3,
		`pipeguard_stage_drops_total{reason="auth_failed",stage="decrypt"}`: 5,
		`pipeguard_stage_drops_total{reason="replay",stage="decrypt"}`:      2,
		`pipeguard_stage_drops_total{reason="replay",stage="udprecv"}`:      0,
		`pipeguard_stage_queue_depth{stage="decrypt"}`:                      7,
		`pipeguard_stage_queue_capacity{stage="decrypt"}`:                   2000,
		`pipeguard_stage_restarts_total{stage="decrypt"}`:                   1,
		`pipeguard_stage_keepalives_total{stage="` + oddStage + `"}`:        4,
		`pipeguard_peers`: 2,
		`pipeguard_peer_last_handshake_seconds{public_key="` + keyA.String() + `"}`: 1795610803.5,
		`pipeguard_peer_last_handshake_seconds{public_key="` + keyB.String() + `"}`: 0,
		`pipeguard_peer_receive_bytes_total{public_key="` + keyA.String() + `"}`:    123,
		`pipeguard_peer_transmit_bytes_total{public_key="` + keyA.String() + `"}`:   456,
		// wg show's transfer counts split: the handshake messages apart.
		`pipeguard_peer_handshake_receive_bytes_total{public_key="` + keyA.String() + `"}`:  92,
		`pipeguard_peer_handshake_transmit_bytes_total{public_key="` + keyA.String() + `"}`: 148,
		`pipeguard_peer_handshake_receive_bytes_total{public_key="` + keyB.String() + `"}`:  0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// Every stage has every drop reason, zero or not, so series never
	// appear out of nowhere.
	if n := countPrefix(got, "pipeguard_stage_drops_total{"); n != 3*len(stages.DropReasons()) {
		t.Errorf("%d drop series, want %d", n, 3*len(stages.DropReasons()))
	}
	if got[`pipeguard_peer_handshakes_total{public_key="`+keyA.String()+`"}`] != 3 ||
		got[`pipeguard_peer_handshakes_total{public_key="`+keyB.String()+`"}`] != 0 ||
		countPrefix(got, "pipeguard_peer_handshakes_total") != 2 {
		t.Errorf("handshakes: %v", got)
	}
}

// queueSource adds the optional managed queues.
type queueSource struct {
	fakeSource
	queues []stages.QueueStats
}

func (q *queueSource) QueueStats() []stages.QueueStats { return q.queues }

func TestExpositionQueues(t *testing.T) {
	out := stages.QueueStats{Name: "outbound", Managed: true}
	out.Len, out.Drops, out.Marks = 12, 7, 3
	out.Sojourn.Buckets[0], out.Sojourn.Buckets[4], out.Sojourn.Buckets[len(out.Sojourn.Buckets)-1] = 10, 5, 1
	out.Sojourn.Count, out.Sojourn.Sum = 16, 1500*time.Millisecond
	src := &queueSource{fakeSource: *newFake(), queues: []stages.QueueStats{out, {Name: "inbound"}}}
	var b bytes.Buffer
	if err := WriteText(&b, src); err != nil {
		t.Fatal(err)
	}
	got := parseStrict(t, b.String())
	want := map[string]float64{
		`pipeguard_queue_sojourn_seconds_bucket{le="5e-05",queue="outbound"}`:  10,
		`pipeguard_queue_sojourn_seconds_bucket{le="0.0005",queue="outbound"}`: 10,
		`pipeguard_queue_sojourn_seconds_bucket{le="0.001",queue="outbound"}`:  15,
		`pipeguard_queue_sojourn_seconds_bucket{le="0.25",queue="outbound"}`:   15,
		`pipeguard_queue_sojourn_seconds_bucket{le="+Inf",queue="outbound"}`:   16,
		`pipeguard_queue_sojourn_seconds_count{queue="outbound"}`:              16,
		`pipeguard_queue_sojourn_seconds_sum{queue="outbound"}`:                1.5,
		`pipeguard_queue_sojourn_seconds_bucket{le="+Inf",queue="inbound"}`:    0,
		`pipeguard_queue_drops_total{queue="outbound"}`:                        7,
		`pipeguard_queue_marks_total{queue="outbound"}`:                        3,
		`pipeguard_queue_packets{queue="outbound"}`:                            12,
		`pipeguard_queue_managed{queue="outbound"}`:                            1,
		`pipeguard_queue_managed{queue="inbound"}`:                             0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if n := countPrefix(got, "pipeguard_queue_sojourn_seconds_bucket{"); n != 2*(len(out.Sojourn.Buckets)) {
		t.Errorf("%d bucket series, want %d", n, 2*len(out.Sojourn.Buckets))
	}
	if countPrefix(got, "pipeguard_queue_") != 0 && countPrefix(parseStrict(t, exposition(t, newFake())), "pipeguard_queue_") != 0 {
		t.Error("queue series without the capability")
	}
}

// exposition is src's metrics as text.
func exposition(t *testing.T, src Source) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, src); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestExpositionEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, &fakeSource{}); err != nil {
		t.Fatal(err)
	}
	got := parseStrict(t, b.String())
	if got["pipeguard_peers"] != 0 || got["go_goroutines"] < 1 || got["go_memstats_heap_alloc_bytes"] < 1 ||
		got["go_memstats_next_gc_bytes"] < got["go_memstats_heap_alloc_bytes"]/2 ||
		len(got) != 5+countPrefix(got, "go_sched_latencies_seconds") || countPrefix(got, "go_sched_latencies_seconds_bucket") != len(sojournBounds)+1 {
		t.Errorf("empty source: %v", got)
	}
}

// TestGCFigures checks that the heap and GC figures follow the runtime:
// a GC cycle counts, and a large live object shows in the heap.
func TestGCFigures(t *testing.T) {
	scrape := func() map[string]float64 {
		var b bytes.Buffer
		if err := WriteText(&b, &fakeSource{}); err != nil {
			t.Fatal(err)
		}
		return parseStrict(t, b.String())
	}
	before := scrape()
	big := make([]byte, 64<<20)
	runtime.GC()
	after := scrape()
	runtime.KeepAlive(big)
	if after["go_gc_cycles_total"] < before["go_gc_cycles_total"]+1 {
		t.Errorf("GC cycles %v after a runtime.GC(), %v before", after["go_gc_cycles_total"], before["go_gc_cycles_total"])
	}
	if after["go_memstats_heap_alloc_bytes"] < 64<<20 {
		t.Errorf("heap %v bytes with 64 MiB live", after["go_memstats_heap_alloc_bytes"])
	}
}

// TestGoroutines checks that go_goroutines follows the process: ten
// goroutines more, ten more counted.
func TestGoroutines(t *testing.T) {
	scrape := func() float64 {
		var b bytes.Buffer
		if err := WriteText(&b, &fakeSource{}); err != nil {
			t.Fatal(err)
		}
		return parseStrict(t, b.String())["go_goroutines"]
	}
	// Goroutines left by earlier tests (an HTTP server's connections)
	// may still be ending while this one counts, so a round that saw
	// fewer is tried again; a gauge that does not follow the count fails
	// every round.
	var before, during float64
	for range 20 {
		before = scrape()
		release := make(chan struct{})
		var started sync.WaitGroup
		for range 10 {
			started.Add(1)
			go func() {
				started.Done()
				<-release
			}()
		}
		started.Wait()
		during = scrape()
		close(release)
		if during >= before+10 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("go_goroutines %v with ten goroutines more than at %v", during, before)
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(NewMux(newFake()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parseStrict(t, string(body))
	resp, err = http.Post(srv.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/other: status %d", resp.StatusCode)
	}
}

func countPrefix(m map[string]float64, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseStrict parses the text exposition format as the spec writes it,
// and fails the test on anything off: a missing final line feed, an
// unknown comment, HELP or TYPE repeated or after the family's samples,
// an unknown type, a family's samples not together, a bad name, a bad
// escape, a value that is not a number, a counter not ending in _total,
// a duplicate series. It returns the samples by series, labels sorted
// and values unescaped.
func parseStrict(t *testing.T, text string) map[string]float64 {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("exposition does not end with a line feed")
	}
	types, helps := map[string]string{}, map[string]bool{}
	done := map[string]bool{} // families whose samples are over
	current := ""
	out := map[string]float64{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, a ...any) { t.Fatalf("line %d %q: %s", i+1, line, fmt.Sprintf(format, a...)) }
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, arg, ok := strings.Cut(rest, " ")
			if !ok || !metricName.MatchString(name) {
				fail("bad comment")
			}
			if done[name] || current == name {
				fail("%s after the family's samples", kind)
			}
			switch kind {
			case "HELP":
				if helps[name] {
					fail("second HELP")
				}
				helps[name] = true
				if _, err := unescape(arg, false); err != nil {
					fail("%v", err)
				}
			case "TYPE":
				if _, ok := types[name]; ok {
					fail("second TYPE")
				}
				if !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, arg) {
					fail("type %q", arg)
				}
				if arg == "counter" && !strings.HasSuffix(name, "_total") {
					fail("counter without _total")
				}
				types[name] = arg
			default:
				fail("unexpected comment")
			}
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			fail("no value")
		}
		name, rest := line[:end], line[end:]
		if !metricName.MatchString(name) {
			fail("bad metric name")
		}
		family := name
		if _, ok := types[name]; !ok {
			// A histogram's samples carry suffixes to its family's name.
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
					family = base
				}
			}
			if family == name {
				fail("sample without TYPE")
			}
		}
		if family != current {
			if done[family] {
				fail("family's samples not together")
			}
			if current != "" {
				done[current] = true
			}
			current = family
		}
		var labels []string
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				ln, after, ok := strings.Cut(rest, `="`)
				if !ok || !labelName.MatchString(ln) {
					fail("bad label name")
				}
				// The value runs to the first unescaped quote.
				j, esc := 0, false
				for ; j < len(after); j++ {
					if esc {
						esc = false
					} else if after[j] == '\\' {
						esc = true
					} else if after[j] == '"' {
						break
					}
				}
				if j == len(after) {
					fail("unterminated label value")
				}
				v, err := unescape(after[:j], true)
				if err != nil {
					fail("%v", err)
				}
				labels = append(labels, ln+`="`+v+`"`)
				rest = strings.TrimPrefix(after[j+1:], ",")
			}
			rest = rest[1:]
		}
		value, ok := strings.CutPrefix(rest, " ")
		if !ok || strings.Contains(value, " ") {
			fail("want one space and a value (no timestamp)")
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			fail("value: %v", err)
		}
		slices.Sort(labels)
		key := name
		if len(labels) > 0 {
			key += "{" + strings.Join(labels, ",") + "}"
		}
		if _, dup := out[key]; dup {
			fail("duplicate series")
		}
		out[key] = v
	}
	return out
}

// unescape undoes the format's escapes: \\ and \n, and \" in label
// values; any other backslash sequence is an error, and so is a bare
// quote or line feed in a label value.
func unescape(s string, label bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			switch s[i] {
			case '\\':
				b.WriteByte('\\')
			case 'n':
				b.WriteByte('\n')
			case '"':
				if !label {
					return "", fmt.Errorf(`\" in HELP`)
				}
				b.WriteByte('"')
			default:
				return "", fmt.Errorf("bad escape \\%c", s[i])
			}
		case label && (c == '"' || c == '\n'):
			return "", fmt.Errorf("unescaped %q", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// TestScrapeGarbage bounds what a scrape allocates: a tunnel's GC runs
// rarely (its queues make the heap goal large), so until then every byte
// a scrape leaves is resident memory, and a scraper comes every few
// seconds for months. The bufio.Writer, the runtime's figures and an
// iterator per peer family take a score of allocations; the hundreds of
// samples must add none, and so must thousands of peers.
func TestScrapeGarbage(t *testing.T) {
	src := newFake()
	for i := range 10 {
		src.stats = append(src.stats, stages.StageStats{Name: fmt.Sprintf("stage-%d", i), Instances: 2,
			Packets: 123_456_789, Bytes: 1 << 40, Drops: map[stages.DropReason]uint64{stages.DropAuth: 77}})
	}
	if n := testing.AllocsPerRun(20, func() { WriteText(io.Discard, src) }); n > 25 {
		t.Errorf("a scrape of %d stages and %d peers makes %v allocations, want at most 25", len(src.stats), len(src.peers), n)
	}
	// Many peers add none either: a gateway's scrape streams them.
	few := testing.AllocsPerRun(5, func() { WriteText(io.Discard, src) })
	src.peers = manyPeers(10_000)
	if n := testing.AllocsPerRun(5, func() { WriteText(io.Discard, src) }); n > few {
		t.Errorf("a scrape of %d peers makes %v allocations, one of 2 peers %v", len(src.peers), n, few)
	}
}

// manyPeers returns n peers with distinct keys and traffic.
func manyPeers(n int) []stages.PeerStatus {
	out := make([]stages.PeerStatus, n)
	for i := range out {
		out[i] = stages.PeerStatus{PublicKey: noise.PublicKey{byte(i), byte(i >> 8), byte(i >> 16), 1},
			LastHandshake: time.Unix(1795610803+int64(i), 0), RxBytes: uint64(i) << 20, TxBytes: uint64(i) << 18, Handshakes: uint64(i % 7)}
	}
	return out
}

// BenchmarkScrapePeers is one scrape of a tunnel with 1,000 and 100,000
// idle peers (a key, a /32, a /128 and an endpoint each): its time,
// bytes and allocations.
func BenchmarkScrapePeers(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			tun := tunnelWithPeers(b, n)
			var cw countWriter
			WriteText(&cw, tun)
			b.ReportAllocs()
			for b.Loop() {
				WriteText(io.Discard, tun)
			}
			b.ReportMetric(float64(cw), "bytes/scrape")
		})
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// tunnelWithPeers makes a tunnel (not served: a scrape reads its
// counters and peers, which need no running stages) with n peers.
func tunnelWithPeers(tb testing.TB, n int) *stages.Tunnel {
	tb.Helper()
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		tb.Fatal(err)
	}
	key, err := noise.GeneratePrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	peers := make([]stages.PeerConfig, n)
	for i := range peers {
		rand.Read(peers[i].PublicKey[:])
		peers[i].AllowedIPs = []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}), 128),
		}
		peers[i].Endpoint = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 51820)
	}
	tun, err := stages.New(stages.Config{PrivateKey: key, Peers: peers}, dev, conn, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dev.Close(); conn.Close() })
	return tun
}
