package flood

import (
	"fmt"
	"strings"

	"pipeguard/bench/core"
)

// WriteTable prints the flood mode's figures: a table of the two phases,
// then the one-line summary (Line).
func (fr *Report) WriteTable(b *strings.Builder, st core.Settings) {
	fmt.Fprintf(b, "\nHandshake flood, in memory: one tunnel, one established peer, bulk data %s at %d B, pipeline, GOMAXPROCS %d;\n",
		fr.Direction, fr.PacketSize, fr.Procs)
	fmt.Fprintf(b, "the flood: initiations with a valid MAC1 and no cookie, from %d source addresses, at %d x one core's X25519 rate (%.0f/s);\n",
		fr.Sources, floodFactor, fr.X25519PerSecond)
	fmt.Fprintf(b, "alone and flooded in %d alternating segments a run, %d run(s); rates per second of wall time;\n", floodSegments, st.Repeat)
	fmt.Fprintf(b, "CPU from the stage labels of a profile, 100 = one core; kept: the median of the segment pairs' ratios.\n\n")
	t := core.Table{Head: []string{"phase", "Gbit/s", "tunnel CPU %", "handshake CPU %", "udprecv CPU %", "received/s", "queue full/s",
		"Curve25519/s", "answered/s", "cookie replies/s", "invalid/s"}, Left: map[int]bool{0: true}}
	row := func(name string, p Phase) []string {
		return []string{name, fmt.Sprintf("%.2f", p.Gbps), fmt.Sprintf("%.0f", p.TunnelCPU), fmt.Sprintf("%.1f", p.HandshakeCPU),
			fmt.Sprintf("%.1f", p.UDPRecvCPU), fmt.Sprintf("%.0f", p.Received), fmt.Sprintf("%.0f", p.QueueFull),
			fmt.Sprintf("%.0f", p.Worked), fmt.Sprintf("%.0f", p.Answered), fmt.Sprintf("%.0f", p.CookieReplies),
			fmt.Sprintf("%.0f", p.Invalid)}
	}
	t.Rows = append(t.Rows, row("unloaded", fr.Unloaded), row("flooded", fr.Flooded))
	t.Write(b, "")
	b.WriteString("\n" + fr.Line() + "\n")
}

// Line is the flood mode's summary in one line, starting
// "flood: data kept NN% of its unloaded rate; ".
func (fr *Report) Line() string {
	f := fr.Flooded
	return fmt.Sprintf("flood: data kept %.0f%% of its unloaded rate; %.2f -> %.2f Gbit/s; "+
		"initiations %.0f/s received (%dx X25519 %.0f/s), %.0f/s answered, %.0f/s worked on (budget %.0f/s), %.0f/s dropped; "+
		"cookie replies %.0f/s; tunnel CPU %.0f%% -> %.0f%% (handshake %.1f%%)",
		100*fr.Kept, fr.Unloaded.Gbps, f.Gbps,
		f.Received, floodFactor, fr.X25519PerSecond, f.Answered, f.Worked, fr.BudgetPerSecond, f.Dropped,
		f.CookieReplies, fr.Unloaded.TunnelCPU, f.TunnelCPU, f.HandshakeCPU)
}
