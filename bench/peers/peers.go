package peers

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"pipeguard/bench/core"
)

// Settings of the mode.
const (
	// DefaultIdle and QuickIdle are the windows idle CPU is measured over.
	DefaultIdle = 10 * time.Second
	QuickIdle   = 2 * time.Second
	// DefaultStream and QuickStream are how long the real peer's stream
	// runs for its throughput.
	DefaultStream = 3 * time.Second
	QuickStream   = time.Second
	// streamSegment is how long each segment of the stream runs: its
	// rate is the segments' median.
	streamSegment = 500 * time.Millisecond
	// pings is how many pings measure the idle round trip, pingEvery
	// apart.
	pings     = 20
	pingEvery = "0.05"
	// WireguardGoMaxPeers is wireguard-go's device.MaxPeers: it refuses
	// more, so the harness does not ask.
	WireguardGoMaxPeers = 1 << 16
	// MaxPeers is the most the mode configures: the kernel's limit per
	// interface, 2^20.
	MaxPeers = 1 << 20
	// keepaliveSeconds is the persistent keepalive turned on for every
	// other peer.
	keepaliveSeconds = 25
	// settle is the pause after a configuration change before CPU is
	// measured, so that the change's own work is not counted as idle.
	settle = time.Second
)

// Implementations measured, in the order of the table.
const (
	ImplPipeGuard   = "pipeguard"
	ImplWireguardGo = "wireguard-go"
)

// DefaultPeers and QuickPeers are the numbers of peers measured unless
// Config.Peers says otherwise.
var (
	DefaultPeers = []int{1, 1_000, 10_000, 100_000}
	QuickPeers   = []int{1, 100, 1_000}
)

// Config is one run of the mode. The zero value runs it with the
// defaults named in the comments, which Quick makes smaller.
type Config struct {
	Peers  []int         // numbers of peers; default DefaultPeers, quick QuickPeers
	Quick  bool          // fewer peers, shorter windows, a smaller burst
	Idle   time.Duration // the idle CPU window; default 10 s, quick 2 s
	Stream time.Duration // the real peer's stream; default 3 s, quick 1 s
	Burst  int           // peers of the handshake burst; default DefaultBurst, quick QuickBurst
	Repeat int           // figures are medians of this many runs; default 1
	Out    core.Out      // progress
}

// WithDefaults fills c's zero fields, and sorts and deduplicates Peers.
func (c Config) WithDefaults() Config {
	if len(c.Peers) == 0 {
		c.Peers = DefaultPeers
		if c.Quick {
			c.Peers = QuickPeers
		}
	}
	c.Peers = slices.Compact(slices.Sorted(slices.Values(c.Peers)))
	pick := func(v, def, quick time.Duration) time.Duration {
		if v != 0 {
			return v
		}
		if c.Quick {
			return quick
		}
		return def
	}
	c.Idle = pick(c.Idle, DefaultIdle, QuickIdle)
	c.Stream = pick(c.Stream, DefaultStream, QuickStream)
	if c.Burst == 0 {
		c.Burst = DefaultBurst
		if c.Quick {
			c.Burst = QuickBurst
		}
	}
	c.Repeat = max(c.Repeat, 1)
	return c
}

// Report is what the mode measured: Rows are the medians of Runs.
type Report struct {
	WireguardGo   string  `json:"wireguard_go"` // the module version wgpeer was built with
	Revision      string  `json:"revision"`     // the PipeGuard commit built
	IdleSeconds   float64 `json:"idle_seconds"`
	StreamSeconds float64 `json:"stream_seconds"`
	Burst         int     `json:"burst_peers"`
	Rows          []Row   `json:"rows"`
	Runs          [][]Row `json:"runs,omitempty"` // every run's rows, when there were several
}

// Row is one implementation at one number of peers.
type Row struct {
	Impl    string `json:"impl"`
	Peers   int    `json:"peers"`
	Refused bool   `json:"refused,omitempty"` // the implementation does not take this many
	// SetconfSeconds and DumpSeconds are wg setconf's and wg show dump's
	// wall time, wg's own work included.
	SetconfSeconds float64 `json:"setconf_seconds"`
	DumpSeconds    float64 `json:"dump_seconds"`
	RSSBytes       uint64  `json:"rss_bytes"`
	// BytesPerPeer is the RSS above the implementation's row with the
	// fewest peers, per peer added; 0 in that row.
	BytesPerPeer float64 `json:"bytes_per_peer"`
	// Goroutines is PipeGuard's go_goroutines from its metrics endpoint,
	// after setconf; 0 for wireguard-go, which serves none.
	Goroutines int `json:"goroutines,omitempty"`
	Threads    int `json:"threads"`
	// IdleCPUPercent and KeepaliveCPUPercent are the process's CPU over
	// the idle window, 100 being one core: with no keepalive, and with
	// every other peer's turned on.
	IdleCPUPercent      float64 `json:"idle_cpu_percent"`
	KeepaliveCPUPercent float64 `json:"keepalive_cpu_percent"`
	AddMillis           float64 `json:"add_ms"`
	RemoveMillis        float64 `json:"remove_ms"`
	// StreamGbps is the real peer's stream as the tunnel delivered it to
	// its TUN (inner bytes); RTTMillis the median round trip of pings to
	// the real peer through the tunnel, idle. The Rel fields are each
	// over the same implementation's row with the fewest peers.
	StreamGbps      float64     `json:"stream_gbit_per_s"`
	StreamRel       float64     `json:"stream_rel"`
	RTTMillis       float64     `json:"rtt_ms"`
	RTTRel          float64     `json:"rtt_rel"`
	StreamSent      uint64      `json:"stream_sent"`      // datagrams the real peer sent
	StreamDelivered uint64      `json:"stream_delivered"` // inner packets the tunnel wrote to its TUN
	Burst           BurstResult `json:"burst"`
}

// relative fills BytesPerPeer, StreamRel and RTTRel from each
// implementation's row with the fewest peers it took.
func relative(rows []Row) {
	base := map[string]Row{}
	for _, r := range rows {
		if b, ok := base[r.Impl]; !r.Refused && (!ok || r.Peers < b.Peers) {
			base[r.Impl] = r
		}
	}
	for i := range rows {
		r, b := &rows[i], base[rows[i].Impl]
		if r.Refused {
			continue
		}
		r.BytesPerPeer = 0
		if r.Peers > b.Peers && r.RSSBytes > b.RSSBytes {
			r.BytesPerPeer = float64(r.RSSBytes-b.RSSBytes) / float64(r.Peers-b.Peers)
		}
		r.StreamRel, r.RTTRel = core.Ratio(r.StreamGbps, b.StreamGbps), core.Ratio(r.RTTMillis, b.RTTMillis)
	}
}

// medianRows is the rows of several runs, each figure the median over the
// runs of the row of the same implementation and number of peers.
func medianRows(runs [][]Row) []Row {
	if len(runs) == 1 {
		return slices.Clone(runs[0])
	}
	out := slices.Clone(runs[0])
	for i := range out {
		var same []Row
		for _, run := range runs {
			same = append(same, run[i])
		}
		m := func(f func(Row) float64) float64 { return core.MedianBy(same, f) }
		r := &out[i]
		r.SetconfSeconds = m(func(r Row) float64 { return r.SetconfSeconds })
		r.DumpSeconds = m(func(r Row) float64 { return r.DumpSeconds })
		r.RSSBytes = uint64(m(func(r Row) float64 { return float64(r.RSSBytes) }))
		r.Goroutines = int(m(func(r Row) float64 { return float64(r.Goroutines) }))
		r.Threads = int(m(func(r Row) float64 { return float64(r.Threads) }))
		r.IdleCPUPercent = m(func(r Row) float64 { return r.IdleCPUPercent })
		r.KeepaliveCPUPercent = m(func(r Row) float64 { return r.KeepaliveCPUPercent })
		r.AddMillis = m(func(r Row) float64 { return r.AddMillis })
		r.RemoveMillis = m(func(r Row) float64 { return r.RemoveMillis })
		r.StreamGbps = m(func(r Row) float64 { return r.StreamGbps })
		r.RTTMillis = m(func(r Row) float64 { return r.RTTMillis })
		r.StreamSent = uint64(m(func(r Row) float64 { return float64(r.StreamSent) }))
		r.StreamDelivered = uint64(m(func(r Row) float64 { return float64(r.StreamDelivered) }))
		b := &r.Burst
		b.Sessions = int(m(func(r Row) float64 { return float64(r.Burst.Sessions) }))
		b.AllSeconds = m(func(r Row) float64 { return r.Burst.AllSeconds })
		b.MedianSeconds = m(func(r Row) float64 { return r.Burst.MedianSeconds })
		b.CookieRounds = int(m(func(r Row) float64 { return float64(r.Burst.CookieRounds) }))
		b.Retried = int(m(func(r Row) float64 { return float64(r.Burst.Retried) }))
	}
	return out
}

// WriteTable writes the mode's two tables to b: configuration and
// memory, then traffic and the handshake burst.
func (r *Report) WriteTable(b *strings.Builder) {
	fmt.Fprintf(b, "\nPeers: each tunnel started empty in a namespace and configured with wg; every peer a random key, a /32, a /128 and an\n"+
		"unroutable endpoint, and one real peer more (the harness); idle CPU over %.0f s, 100 = one core, keepalive: every other\n"+
		"peer's at %d s (no sessions: handshake attempts); add/remove: one UAPI request each; goroutines: PipeGuard's metrics;\n"+
		"PipeGuard %s, wireguard-go %s.\n\n", r.IdleSeconds, keepaliveSeconds, r.Revision, r.WireguardGo)
	t := core.Table{Head: []string{"impl", "peers", "setconf s", "dump s", "RSS MiB", "bytes/peer", "goroutines", "threads",
		"idle CPU %", "keepalive CPU %", "add ms", "remove ms"}, Left: map[int]bool{0: true}}
	for _, row := range r.Rows {
		if row.Refused {
			t.Rows = append(t.Rows, refused(row, len(t.Head)))
			continue
		}
		t.Rows = append(t.Rows, []string{row.Impl, strconv.Itoa(row.Peers),
			fmt.Sprintf("%.3f", row.SetconfSeconds), fmt.Sprintf("%.3f", row.DumpSeconds),
			fmt.Sprintf("%.1f", float64(row.RSSBytes)/(1<<20)),
			core.OrDash(row.BytesPerPeer > 0, fmt.Sprintf("%.0f", row.BytesPerPeer)),
			core.OrDash(row.Goroutines > 0, strconv.Itoa(row.Goroutines)),
			strconv.Itoa(row.Threads),
			fmt.Sprintf("%.1f", row.IdleCPUPercent), fmt.Sprintf("%.1f", row.KeepaliveCPUPercent),
			fmt.Sprintf("%.2f", row.AddMillis), fmt.Sprintf("%.2f", row.RemoveMillis)})
	}
	t.Write(b, "")

	fmt.Fprintf(b, "\nThe real peer among them: its stream of 1280-byte packets as the tunnel delivered it (the median of %.1f s in %v\n"+
		"segments), and the median of %d idle pings through the tunnel, each also over the same implementation's fewest peers;\n"+
		"the handshake burst: %d more peers"+
		" (the harness, %d source addresses) start a handshake within %v, retrying as real\n"+
		"initiators do (5 s; a cookie reply is kept for the next initiation's MAC2): seconds until every one has a session, and\n"+
		"the median.\n\n",
		r.StreamSeconds, streamSegment, pings, r.Burst, burstSources, BurstWindow)
	t = core.Table{Head: []string{"impl", "peers", "Gbit/s", "x fewest", "RTT ms", "x fewest", "burst", "sessions",
		"all in s", "median s", "cookie rounds", "retried"}, Left: map[int]bool{0: true}}
	for _, row := range r.Rows {
		if row.Refused {
			t.Rows = append(t.Rows, refused(row, len(t.Head)))
			continue
		}
		bu := row.Burst
		t.Rows = append(t.Rows, []string{row.Impl, strconv.Itoa(row.Peers),
			fmt.Sprintf("%.2f", row.StreamGbps), fmt.Sprintf("%.2f", row.StreamRel),
			fmt.Sprintf("%.3f", row.RTTMillis), fmt.Sprintf("%.2f", row.RTTRel),
			strconv.Itoa(bu.Peers), strconv.Itoa(bu.Sessions),
			core.OrDash(bu.AllSeconds > 0, fmt.Sprintf("%.2f", bu.AllSeconds)),
			core.OrDash(bu.Sessions > 0, fmt.Sprintf("%.2f", bu.MedianSeconds)),
			strconv.Itoa(bu.CookieRounds), strconv.Itoa(bu.Retried)})
	}
	t.Write(b, "")
}

// refused is a row's cells for an implementation that refused its
// number of peers: it says so in every figure's cell.
func refused(row Row, cells int) []string {
	out := []string{row.Impl, strconv.Itoa(row.Peers)}
	for range cells - 2 {
		out = append(out, "refused")
	}
	return out
}
