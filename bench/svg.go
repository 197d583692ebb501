package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
)

// The throughput chart, as a hand-written SVG. In memory: one panel per
// packet size, throughput against GOMAXPROCS, a line per engine and
// direction, and the AEAD limit dashed. In netns mode (netns_svg.go), a
// row of panels below: TCP throughput against iperf3 streams, a line per
// tunnel, wireguard-go's among them. The chart model (chart, panel,
// series) knows nothing of the harness.

// Colours per direction: the pipeline strong, the sequential baseline the
// same hue, lighter.
var dirColors = map[core.Direction][2]string{
	core.Inbound:  {"#1f5fa8", "#8fb6e0"},
	core.Outbound: {"#c2530a", "#f2ac74"},
	core.Both:     {"#2b8a3e", "#94d3a2"},
}

// WriteSVG draws the report's figures as a chart to w: a row of panels
// for each mode that ran, in memory first, then netns, then loadgen.
func (r *Report) WriteSVG(w io.Writer) error {
	if r.Soak != nil { // a mode of its own: its series against time
		return svg.Write(w, r.Soak.Chart(r.Machine))
	}
	c, row := svg.Chart{Title: "PipeGuard throughput"}, 0
	var parts []string
	if r.Mem != nil {
		c, row = memChart(r), 1
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

// memChart makes the chart of the in-memory figures: for each size, at the
// fewest peers, each engine and direction against GOMAXPROCS. A pipeline
// point is the run with as many workers as GOMAXPROCS, else the fastest.
func memChart(r *Report) svg.Chart {
	mr := r.Mem
	c := svg.Chart{
		Title:  "PipeGuard in memory: throughput against cores",
		XLabel: "GOMAXPROCS (cores)",
		YLabel: "inner Gbit/s",
	}
	if len(mr.Results) == 0 {
		return c
	}
	peers := slices.MinFunc(mr.Results, func(a, b MemResult) int { return cmp.Compare(a.Peers, b.Peers) }).Peers
	c.Subtitles = append(c.Subtitles, fmt.Sprintf("%s, %d cores, %s, %s; %d peer%s; pipeline with workers = GOMAXPROCS; medians of %d",
		r.Machine.CPUModel, r.Machine.Cores, r.Machine.GoVersion, r.Machine.Date, peers, core.Plural(peers), r.Settings.Repeat))
	var sizes []int
	for _, res := range mr.Results {
		if !slices.Contains(sizes, res.PacketSize) {
			sizes = append(sizes, res.PacketSize)
		}
	}
	slices.Sort(sizes)
	for _, size := range sizes {
		p := svg.Panel{Title: fmt.Sprintf("%d-byte packets", size)}
		for _, d := range []core.Direction{core.Inbound, core.Outbound, core.Both} {
			for ei, engine := range []string{engineSequential, "pipeline"} {
				s := svg.Series{Name: engine + " " + string(d), Color: dirColors[d][1-ei], Width: 2, Marker: "square"}
				if ei == 1 {
					s.Width, s.Marker = 3, "circle"
				}
				best := map[int]MemResult{}
				for _, res := range mr.Results {
					if res.PacketSize != size || res.Peers != peers || res.Direction != d || res.Engine != engine {
						continue
					}
					old, ok := best[res.Procs]
					if !ok || preferred(res) && !preferred(old) || preferred(res) == preferred(old) && res.Gbps > old.Gbps {
						best[res.Procs] = res
					}
				}
				for _, procs := range slices.Sorted(maps.Keys(best)) {
					s.Points = append(s.Points, svg.Point{X: float64(procs), Y: best[procs].Gbps})
				}
				p.Add(s)
			}
		}
		aead := svg.Series{Name: "ChaCha20-Poly1305 limit", Color: "#555555", Width: 2, Dashed: true}
		for _, a := range mr.AEAD {
			if a.PacketSize == size {
				aead.Points = append(aead.Points, svg.Point{X: float64(a.Procs), Y: a.Gbps})
			}
		}
		p.Add(aead)
		c.Panels = append(c.Panels, p)
	}
	return c
}

// preferred says a pipeline run has as many workers as GOMAXPROCS (the
// engine's default), the run the chart shows.
func preferred(r MemResult) bool { return r.Workers == r.Procs }
