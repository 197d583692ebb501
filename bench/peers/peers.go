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
	Peers []int         // numbers of peers; default DefaultPeers, quick QuickPeers
	Quick bool          // fewer peers and a shorter idle window
	Idle  time.Duration // the idle CPU window; default 10 s, quick 2 s
	Out   core.Out      // progress
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
	if c.Idle == 0 {
		c.Idle = DefaultIdle
		if c.Quick {
			c.Idle = QuickIdle
		}
	}
	return c
}

// Report is what the mode measured.
type Report struct {
	WireguardGo string  `json:"wireguard_go"` // the module version wgpeer was built with
	Revision    string  `json:"revision"`     // the PipeGuard commit built
	IdleSeconds float64 `json:"idle_seconds"`
	Rows        []Row   `json:"rows"`
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
	Threads      int     `json:"threads"`
	// IdleCPUPercent and KeepaliveCPUPercent are the process's CPU over
	// the idle window, 100 being one core: with no keepalive, and with
	// every other peer's turned on.
	IdleCPUPercent      float64 `json:"idle_cpu_percent"`
	KeepaliveCPUPercent float64 `json:"keepalive_cpu_percent"`
	AddMillis           float64 `json:"add_ms"`
	RemoveMillis        float64 `json:"remove_ms"`
}

// perPeer fills BytesPerPeer from each implementation's row with the
// fewest peers it took.
func perPeer(rows []Row) {
	base := map[string]Row{}
	for _, r := range rows {
		if b, ok := base[r.Impl]; !r.Refused && (!ok || r.Peers < b.Peers) {
			base[r.Impl] = r
		}
	}
	for i := range rows {
		r, b := &rows[i], base[rows[i].Impl]
		if !r.Refused && r.Peers > b.Peers && r.RSSBytes > b.RSSBytes {
			r.BytesPerPeer = float64(r.RSSBytes-b.RSSBytes) / float64(r.Peers-b.Peers)
		}
	}
}

// WriteTable writes the mode's table to b.
func (r *Report) WriteTable(b *strings.Builder) {
	fmt.Fprintf(b, "\nPeers: each tunnel started empty in a namespace and configured with wg; every peer a random key, a /32, a /128 and an\n"+
		"unroutable endpoint; idle CPU over %.0f s, 100 = one core, keepalive: every other peer's at %d s (no sessions: handshake attempts);\n"+
		"add/remove: one UAPI request each; PipeGuard %s, wireguard-go %s.\n\n", r.IdleSeconds, keepaliveSeconds, r.Revision, r.WireguardGo)
	t := core.Table{Head: []string{"impl", "peers", "setconf s", "dump s", "RSS MiB", "bytes/peer", "threads",
		"idle CPU %", "keepalive CPU %", "add ms", "remove ms"}, Left: map[int]bool{0: true}}
	for _, row := range r.Rows {
		if row.Refused {
			cells := []string{row.Impl, strconv.Itoa(row.Peers)}
			for range len(t.Head) - 2 {
				cells = append(cells, "refused")
			}
			t.Rows = append(t.Rows, cells)
			continue
		}
		t.Rows = append(t.Rows, []string{row.Impl, strconv.Itoa(row.Peers),
			fmt.Sprintf("%.3f", row.SetconfSeconds), fmt.Sprintf("%.3f", row.DumpSeconds),
			fmt.Sprintf("%.1f", float64(row.RSSBytes)/(1<<20)),
			core.OrDash(row.BytesPerPeer > 0, fmt.Sprintf("%.0f", row.BytesPerPeer)),
			strconv.Itoa(row.Threads),
			fmt.Sprintf("%.1f", row.IdleCPUPercent), fmt.Sprintf("%.1f", row.KeepaliveCPUPercent),
			fmt.Sprintf("%.2f", row.AddMillis), fmt.Sprintf("%.2f", row.RemoveMillis)})
	}
	t.Write(b, "")
}
