package bench

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// The throughput chart, as a hand-written SVG. In memory: one panel per
// packet size, throughput against GOMAXPROCS, a line per engine and
// direction, and the AEAD limit dashed. In netns mode (netns_svg.go), a
// row of panels below: TCP throughput against iperf3 streams, a line per
// tunnel, wireguard-go's among them. The chart model (chart, panel,
// series) knows nothing of the harness.

type chart struct {
	title          string
	subtitles      []string // one line each, under the title
	xLabel, yLabel string   // for panels that name none
	panels         []panel
}

type panel struct {
	title          string
	xLabel, yLabel string     // "": the chart's
	xStep          float64    // between x ticks; 0: 1 (cores, streams)
	xRange         [2]float64 // the x axis's ends, when [1] > [0]; else the points'
	row            int        // panels fill rows from 0, left to right
	series         []series
}

// add appends s with its points in x order, unless it has none: a series
// without points would only clutter the legend.
func (p *panel) add(s series) {
	if len(s.points) == 0 {
		return
	}
	slices.SortFunc(s.points, func(a, b point) int { return cmp.Compare(a.x, b.x) })
	p.series = append(p.series, s)
}

type series struct {
	name   string
	color  string
	width  float64
	dashed bool
	marker string // "circle", "square" or "" for none
	points []point
}

type point struct{ x, y float64 }

// Geometry of the chart, in SVG user units (pixels at 100%).
const (
	svgPanelW   = 300
	svgPanelH   = 280
	svgMarginL  = 64 // room for the y ticks and label
	svgGap      = 28
	svgTop      = 76             // room for the title and one subtitle line
	svgSubLineH = 14             // per further subtitle line
	svgRowH     = svgPanelH + 92 // a row of panels with its axis labels and the next row's titles
	svgLegendH  = 24             // per legend row
	svgFont     = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
	svgGridGrey = "#dddddd"
	// The legend fills columns of two rows (in memory: sequential above
	// pipeline for each direction, then the limit).
	legendRows, legendColW = 2, 180
)

// Colours per direction: the pipeline strong, the sequential baseline the
// same hue, lighter.
var dirColors = map[Direction][2]string{
	Inbound:  {"#1f5fa8", "#8fb6e0"},
	Outbound: {"#c2530a", "#f2ac74"},
	Both:     {"#2b8a3e", "#94d3a2"},
}

// WriteSVG draws the report's figures as a chart to w: a row of panels
// for each mode that ran, in memory first, then netns, then loadgen.
func (r *Report) WriteSVG(w io.Writer) error {
	if r.Soak != nil { // a mode of its own: its series against time
		return writeChart(w, soakChart(r))
	}
	c, row := chart{title: "PipeGuard throughput"}, 0
	var parts []string
	if r.Mem != nil {
		c, row = memChart(r), 1
		parts = append(parts, "in memory against cores")
	}
	if r.Netns != nil {
		c = netnsChart(r, c, row)
		row++
		parts = append(parts, "TCP in network namespaces against wireguard-go")
	}
	if r.Loadgen != nil {
		c = loadgenChart(r, c, row)
		row++
		parts = append(parts, "one end under load against wireguard-go")
	}
	switch {
	case row == 0:
		c.subtitles = []string{"no figures in this report"}
	case row > 1:
		c.title = "PipeGuard: " + strings.Join(parts, "; ")
	case r.Netns != nil:
		c.title = "PipeGuard against wireguard-go: TCP in network namespaces"
	case r.Loadgen != nil:
		c.title = "PipeGuard against wireguard-go: one end under load"
	}
	return writeChart(w, c)
}

// memChart makes the chart of the in-memory figures: for each size, at the
// fewest peers, each engine and direction against GOMAXPROCS. A pipeline
// point is the run with as many workers as GOMAXPROCS, else the fastest.
func memChart(r *Report) chart {
	mr := r.Mem
	c := chart{
		title:  "PipeGuard in memory: throughput against cores",
		xLabel: "GOMAXPROCS (cores)",
		yLabel: "inner Gbit/s",
	}
	if len(mr.Results) == 0 {
		return c
	}
	peers := slices.MinFunc(mr.Results, func(a, b MemResult) int { return cmp.Compare(a.Peers, b.Peers) }).Peers
	c.subtitles = append(c.subtitles, fmt.Sprintf("%s, %d cores, %s, %s; %d peer%s; pipeline with workers = GOMAXPROCS; medians of %d",
		r.Machine.CPUModel, r.Machine.Cores, r.Machine.GoVersion, r.Machine.Date, peers, plural(peers), r.Settings.Repeat))
	var sizes []int
	for _, res := range mr.Results {
		if !slices.Contains(sizes, res.PacketSize) {
			sizes = append(sizes, res.PacketSize)
		}
	}
	slices.Sort(sizes)
	for _, size := range sizes {
		p := panel{title: fmt.Sprintf("%d-byte packets", size)}
		for _, d := range []Direction{Inbound, Outbound, Both} {
			for ei, engine := range []string{engineSequential, "pipeline"} {
				s := series{name: engine + " " + string(d), color: dirColors[d][1-ei], width: 2, marker: "square"}
				if ei == 1 {
					s.width, s.marker = 3, "circle"
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
					s.points = append(s.points, point{float64(procs), best[procs].Gbps})
				}
				p.add(s)
			}
		}
		aead := series{name: "ChaCha20-Poly1305 limit", color: "#555555", width: 2, dashed: true}
		for _, a := range mr.AEAD {
			if a.PacketSize == size {
				aead.points = append(aead.points, point{float64(a.Procs), a.Gbps})
			}
		}
		p.add(aead)
		c.panels = append(c.panels, p)
	}
	return c
}

// preferred says a pipeline run has as many workers as GOMAXPROCS (the
// engine's default), the run the chart shows.
func preferred(r MemResult) bool { return r.Workers == r.Procs }

// writeChart writes c as a standalone SVG document.
func writeChart(w io.Writer, c chart) error {
	// The legend: each series name once, in order of first appearance,
	// each row's starting a new column.
	var legend []series
	var legendCol []int
	col, slot, lastRow := 0, 0, 0
	for _, p := range c.panels {
		for _, s := range p.series {
			if slices.ContainsFunc(legend, func(l series) bool { return l.name == s.name }) {
				continue
			}
			if p.row != lastRow && slot > 0 {
				col, slot = col+1, 0
			}
			lastRow = p.row
			legend = append(legend, s)
			legendCol = append(legendCol, col*legendRows+slot)
			if slot++; slot == legendRows {
				col, slot = col+1, 0
			}
		}
	}
	cols := col
	if slot > 0 {
		cols++
	}
	// Each legend column is as wide as its longest name needs.
	legendX := []int{svgMarginL}
	for c := range cols {
		legendX = append(legendX, legendX[c]+max(legendColW, legendTextW(legend, legendCol, c)))
	}
	// Panels per row, and how far down the rows go.
	perRow := map[int]int{}
	rows := 1
	for _, p := range c.panels {
		perRow[p.row]++
		rows = max(rows, p.row+1)
	}
	n := max(slices.Max(append(slices.Collect(maps.Values(perRow)), 1)), 1)
	top := svgTop + svgSubLineH*max(len(c.subtitles)-1, 0)
	width := max(svgMarginL+n*svgPanelW+(n-1)*(svgGap+svgMarginL/2)+svgGap, legendX[cols])
	// Room for the title (18-unit bold, about 11 units a character) and
	// the subtitles (11-unit, about 6).
	width = max(width, svgMarginL+11*len(c.title)+svgGap)
	for _, sub := range c.subtitles {
		width = max(width, svgMarginL+6*len(sub)+svgGap)
	}
	legendTop := top + (rows-1)*svgRowH + svgPanelH + 56
	height := legendTop + legendRows*svgLegendH

	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n",
		width, height, width, height, svgFont)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="18" font-weight="bold">%s</text>`+"\n", svgMarginL, esc(c.title))
	for i, sub := range c.subtitles {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#444444">%s</text>`+"\n", svgMarginL, 46+i*svgSubLineH, esc(sub))
	}
	inRow := map[int]int{}
	for _, p := range c.panels {
		i := inRow[p.row]
		inRow[p.row]++
		x0 := svgMarginL + i*(svgPanelW+svgGap+svgMarginL/2)
		writePanel(&b, c, p, x0, top+p.row*svgRowH)
	}
	for i, s := range legend {
		x := legendX[legendCol[i]/legendRows]
		y := legendTop + (legendCol[i]%legendRows)*svgLegendH
		writeLine(&b, "legend", s, []point{{0, 0}, {1, 0}}, func(p point) (float64, float64) {
			return float64(x) + p.x*36, float64(y)
		})
		writeMarker(&b, s, float64(x)+18, float64(y))
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+44, y+4, esc(s.name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// legendTextW estimates the room the legend's column col needs (pos[i]
// is legend[i]'s slot, legendRows to a column): its sample line and its
// longest name, at about 7 units per character of 12-unit text.
func legendTextW(legend []series, pos []int, col int) int {
	w := 0
	for i, s := range legend {
		if pos[i]/legendRows == col {
			w = max(w, len(s.name))
		}
	}
	return 44 + 7*w + 16
}

// writePanel draws one panel's frame, grid, ticks, labels and lines with
// its top-left corner at (x0, y0).
func writePanel(b *strings.Builder, c chart, p panel, x0, y0 int) {
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range p.series {
		for _, pt := range s.points {
			xmin, xmax, ymax = min(xmin, pt.x), max(xmax, pt.x), max(ymax, pt.y)
		}
	}
	if xmin > xmax { // no points
		xmin, xmax = 1, 2
	}
	if p.xRange[1] > p.xRange[0] {
		xmin, xmax = p.xRange[0], p.xRange[1]
	}
	if xmin == xmax {
		xmin, xmax = xmin-0.5, xmax+0.5
	}
	top, step := niceScale(ymax)
	// A little room left and right, so points at the ends stay clear of
	// the axes.
	pad := (xmax - xmin) * 0.08
	lo, hi := xmin-pad, xmax+pad
	fx := func(x float64) float64 { return float64(x0) + (x-lo)/(hi-lo)*svgPanelW }
	fy := func(y float64) float64 { return float64(y0) + svgPanelH - y/top*svgPanelH }
	xy := func(pt point) (float64, float64) { return fx(pt.x), fy(pt.y) }

	fmt.Fprintf(b, `<g><text x="%.1f" y="%d" text-anchor="middle" font-size="13" font-weight="bold">%s</text>`+"\n",
		float64(x0)+svgPanelW/2, y0-10, esc(p.title))
	for y := 0.0; y <= top+step/2; y += step {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", x0, fy(y), x0+svgPanelW, fy(y), svgGridGrey)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, fy(y)+4, fmtTick(y, step))
	}
	xstep := cmp.Or(p.xStep, 1)
	// A point a hair past a tick (a sample at 0.00002 s) keeps the tick.
	xFirst := math.Ceil(xmin/xstep-0.01) * xstep
	if xFirst == 0 {
		xFirst = 0 // not -0, which prints as "-0"
	}
	for x := xFirst; x <= xmax+xstep*1e-6; x += xstep { // a hair over: steps of 0.05 add up to 0.8000000001
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333"/>`+"\n", fx(x), y0+svgPanelH, fx(x), y0+svgPanelH+5)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", fx(x), y0+svgPanelH+18, fmtTick(x, xstep))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333333"/>`+"\n", x0, y0, svgPanelW, svgPanelH)
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(x0)+svgPanelW/2, y0+svgPanelH+36, esc(cmp.Or(p.xLabel, c.xLabel)))
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
		x0-44, float64(y0)+svgPanelH/2, esc(cmp.Or(p.yLabel, c.yLabel)))
	for _, s := range p.series {
		writeLine(b, "series", s, s.points, xy)
		for _, pt := range s.points {
			x, y := xy(pt)
			writeMarker(b, s, x, y)
		}
	}
	b.WriteString("</g>\n")
}

// writeLine draws s's line through pts, mapped by xy, as a polyline of
// class "series" (in a panel) or "legend"; a lone point gets no line,
// only its marker.
func writeLine(b *strings.Builder, class string, s series, pts []point, xy func(point) (float64, float64)) {
	if len(pts) < 2 {
		return
	}
	var coords []string
	for _, pt := range pts {
		x, y := xy(pt)
		coords = append(coords, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	dash := ""
	if s.dashed {
		dash = ` stroke-dasharray="7,5"`
	}
	fmt.Fprintf(b, `<polyline class="%s" data-series="%s" points="%s" fill="none" stroke="%s" stroke-width="%g"%s/>`+"\n",
		class, esc(s.name), strings.Join(coords, " "), s.color, s.width, dash)
}

func writeMarker(b *strings.Builder, s series, x, y float64) {
	switch s.marker {
	case "circle":
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"/>`+"\n", x, y, s.color)
	case "square":
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="8" height="8" fill="white" stroke="%s" stroke-width="2"/>`+"\n", x-4, y-4, s.color)
	}
}

// niceScale returns a top for an axis from 0 that holds v, and a tick step
// of 1, 2 or 5 times a power of ten giving four to eight ticks.
func niceScale(v float64) (top, step float64) {
	if v <= 0 {
		return 1, 0.2
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2, 5} {
		step = m * mag
		if v/step <= 7 {
			break
		}
	}
	return math.Ceil(v*1.05/step) * step, step
}

// fmtTick prints y with the decimals its step needs.
func fmtTick(y, step float64) string {
	dec := max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
	return fmt.Sprintf("%.*f", dec, y)
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // never fails on a strings.Builder
	return b.String()
}
