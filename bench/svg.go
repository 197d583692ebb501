package bench

import (
	"io"
	"strings"

	"pipeguard/bench/core/svg"
)

// WriteSVG draws the report's figures as a chart to w: a row of panels
// for each mode that ran, in memory first, then netns, then loadgen; the
// soak's series against time and the peers mode's against peers are
// charts of their own; the flood mode draws none.
func (r *Report) WriteSVG(w io.Writer) error {
	if r.Soak != nil { // a mode of its own: its series against time
		return svg.Write(w, r.Soak.Chart(r.Machine))
	}
	if r.Peers != nil { // a mode of its own: against the number of peers
		return svg.Write(w, r.Peers.Chart(r.Machine))
	}
	c, row := svg.Chart{Title: "PipeGuard throughput"}, 0
	var parts []string
	if r.Mem != nil {
		c, row = r.Mem.Chart(r.Machine, r.Settings), 1
		parts = append(parts, "in memory against cores")
	}
	if r.Netns != nil {
		c = r.Netns.AddChart(c, r.Machine, r.Settings, row)
		row++
		parts = append(parts, "TCP in network namespaces against wireguard-go")
	}
	if r.Loadgen != nil {
		c = r.Loadgen.AddChart(c, r.Machine, r.Settings, row)
		row++
		parts = append(parts, "one end under load against wireguard-go")
	}
	switch {
	case row == 0:
		c.Subtitles = []string{"no figures in this report"}
	case row > 1:
		c.Title = "PipeGuard: " + strings.Join(parts, "; ")
	case r.Netns != nil:
		c.Title = "PipeGuard against wireguard-go: TCP in network namespaces"
	case r.Loadgen != nil:
		c.Title = "PipeGuard against wireguard-go: one end under load"
	}
	return svg.Write(w, c)
}
