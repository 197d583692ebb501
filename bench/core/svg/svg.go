package svg

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Chart is a figure of one or more panels of lines, with a title, a
// legend and, under the title, lines of subtitle.
type Chart struct {
	Title          string
	Subtitles      []string // one line each, under the title
	XLabel, YLabel string   // for panels that name none
	Panels         []Panel
}

// Panel is one plot: lines against an x axis, the y axis from 0.
type Panel struct {
	Title          string
	XLabel, YLabel string     // "": the chart's
	XStep          float64    // between x ticks; 0: 1 (cores, streams)
	XRange         [2]float64 // the x axis's ends, when [1] > [0]; else the points'
	Row            int        // panels fill rows from 0, left to right
	Series         []Series
	// LogX and LogY make an axis logarithmic, from the power of ten
	// below its least point to the one above its greatest, a tick at
	// each; points at or below 0 are left out. XStep and XRange do not
	// apply to a logarithmic x axis.
	LogX, LogY bool
}

// Add appends s with its points in x order, unless it has none: a series
// without points would only clutter the legend.
func (p *Panel) Add(s Series) {
	if len(s.Points) == 0 {
		return
	}
	slices.SortFunc(s.Points, func(a, b Point) int { return cmp.Compare(a.X, b.X) })
	p.Series = append(p.Series, s)
}

// Series is one line and its legend entry; a series of the same name in
// another panel shares the entry.
type Series struct {
	Name   string
	Color  string
	Width  float64
	Dashed bool
	Marker string // "circle", "square" or "" for none
	Points []Point
}

// Point is one point of a line.
type Point struct{ X, Y float64 }

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

// Write writes c as a standalone SVG document.
func Write(w io.Writer, c Chart) error {
	// The legend: each series name once, in order of first appearance,
	// each row's starting a new column.
	var legend []Series
	var legendCol []int
	col, slot, lastRow := 0, 0, 0
	for _, p := range c.Panels {
		for _, s := range p.Series {
			if slices.ContainsFunc(legend, func(l Series) bool { return l.Name == s.Name }) {
				continue
			}
			if p.Row != lastRow && slot > 0 {
				col, slot = col+1, 0
			}
			lastRow = p.Row
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
	for _, p := range c.Panels {
		perRow[p.Row]++
		rows = max(rows, p.Row+1)
	}
	n := max(slices.Max(append(slices.Collect(maps.Values(perRow)), 1)), 1)
	top := svgTop + svgSubLineH*max(len(c.Subtitles)-1, 0)
	width := max(svgMarginL+n*svgPanelW+(n-1)*(svgGap+svgMarginL/2)+svgGap, legendX[cols])
	// Room for the title (18-unit bold, about 11 units a character) and
	// the subtitles (11-unit, about 6).
	width = max(width, svgMarginL+11*len(c.Title)+svgGap)
	for _, sub := range c.Subtitles {
		width = max(width, svgMarginL+6*len(sub)+svgGap)
	}
	legendTop := top + (rows-1)*svgRowH + svgPanelH + 56
	height := legendTop + legendRows*svgLegendH

	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n",
		width, height, width, height, svgFont)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="18" font-weight="bold">%s</text>`+"\n", svgMarginL, esc(c.Title))
	for i, sub := range c.Subtitles {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#444444">%s</text>`+"\n", svgMarginL, 46+i*svgSubLineH, esc(sub))
	}
	inRow := map[int]int{}
	for _, p := range c.Panels {
		i := inRow[p.Row]
		inRow[p.Row]++
		x0 := svgMarginL + i*(svgPanelW+svgGap+svgMarginL/2)
		writePanel(&b, c, p, x0, top+p.Row*svgRowH)
	}
	for i, s := range legend {
		x := legendX[legendCol[i]/legendRows]
		y := legendTop + (legendCol[i]%legendRows)*svgLegendH
		writeLine(&b, "legend", s, []Point{{0, 0}, {1, 0}}, func(p Point) (float64, float64) {
			return float64(x) + p.X*36, float64(y)
		})
		writeMarker(&b, s, float64(x)+18, float64(y))
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+44, y+4, esc(s.Name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// legendTextW estimates the room the legend's column col needs (pos[i]
// is legend[i]'s slot, legendRows to a column): its sample line and its
// longest name, at about 7 units per character of 12-unit text.
func legendTextW(legend []Series, pos []int, col int) int {
	w := 0
	for i, s := range legend {
		if pos[i]/legendRows == col {
			w = max(w, len(s.Name))
		}
	}
	return 44 + 7*w + 16
}

// writePanel draws one panel's frame, grid, ticks, labels and lines with
// its top-left corner at (x0, y0).
func writePanel(b *strings.Builder, c Chart, p Panel, x0, y0 int) {
	if p.LogX || p.LogY {
		writeLogPanel(b, c, p, x0, y0)
		return
	}
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range p.Series {
		for _, pt := range s.Points {
			xmin, xmax, ymax = min(xmin, pt.X), max(xmax, pt.X), max(ymax, pt.Y)
		}
	}
	if xmin > xmax { // no points
		xmin, xmax = 1, 2
	}
	if p.XRange[1] > p.XRange[0] {
		xmin, xmax = p.XRange[0], p.XRange[1]
	}
	if xmin == xmax {
		xmin, xmax = xmin-0.5, xmax+0.5
	}
	top, step := NiceScale(ymax)
	// A little room left and right, so points at the ends stay clear of
	// the axes.
	pad := (xmax - xmin) * 0.08
	lo, hi := xmin-pad, xmax+pad
	fx := func(x float64) float64 { return float64(x0) + (x-lo)/(hi-lo)*svgPanelW }
	fy := func(y float64) float64 { return float64(y0) + svgPanelH - y/top*svgPanelH }
	xy := func(pt Point) (float64, float64) { return fx(pt.X), fy(pt.Y) }

	fmt.Fprintf(b, `<g><text x="%.1f" y="%d" text-anchor="middle" font-size="13" font-weight="bold">%s</text>`+"\n",
		float64(x0)+svgPanelW/2, y0-10, esc(p.Title))
	for y := 0.0; y <= top+step/2; y += step {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", x0, fy(y), x0+svgPanelW, fy(y), svgGridGrey)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, fy(y)+4, fmtTick(y, step))
	}
	xstep := cmp.Or(p.XStep, 1)
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
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(x0)+svgPanelW/2, y0+svgPanelH+36, esc(cmp.Or(p.XLabel, c.XLabel)))
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
		x0-44, float64(y0)+svgPanelH/2, esc(cmp.Or(p.YLabel, c.YLabel)))
	for _, s := range p.Series {
		writeLine(b, "series", s, s.Points, xy)
		for _, pt := range s.Points {
			x, y := xy(pt)
			writeMarker(b, s, x, y)
		}
	}
	b.WriteString("</g>\n")
}

// writeLogPanel is writePanel for a panel with a logarithmic axis (or
// two): each such axis runs over whole decades, with a tick and a grid
// line at each power of ten; a linear y axis runs from 0 as elsewhere.
func writeLogPanel(b *strings.Builder, c Chart, p Panel, x0, y0 int) {
	keep := func(pt Point) bool { return (!p.LogX || pt.X > 0) && (!p.LogY || pt.Y > 0) }
	xr, yr := [2]float64{math.Inf(1), math.Inf(-1)}, [2]float64{math.Inf(1), math.Inf(-1)}
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if keep(pt) {
				xr = [2]float64{min(xr[0], pt.X), max(xr[1], pt.X)}
				yr = [2]float64{min(yr[0], pt.Y), max(yr[1], pt.Y)}
			}
		}
	}
	if xr[0] > xr[1] { // no points
		xr, yr = [2]float64{1, 10}, [2]float64{1, 10}
	}
	type axis struct {
		lo, hi float64 // in the axis's own units: decades when logarithmic
		log    bool
		ticks  []float64 // values
		step   float64   // linear ticks' step, for their labels
	}
	mk := func(r [2]float64, log, fromZero bool) axis {
		if log {
			a := axis{lo: math.Floor(math.Log10(r[0])), hi: math.Ceil(math.Log10(r[1])), log: true}
			if a.hi == a.lo {
				a.hi++
			}
			for d := a.lo; d <= a.hi; d++ {
				a.ticks = append(a.ticks, math.Pow(10, d))
			}
			return a
		}
		lo := r[0]
		if fromZero {
			lo = 0
		}
		top, step := NiceScale(r[1])
		a := axis{lo: lo, hi: top, step: step}
		for v := lo; v <= top+step/2; v += step {
			a.ticks = append(a.ticks, v)
		}
		return a
	}
	ax, ay := mk(xr, p.LogX, false), mk(yr, p.LogY, true)
	pos := func(a axis, v float64) float64 {
		if a.log {
			v = math.Log10(v)
		}
		return (v - a.lo) / (a.hi - a.lo)
	}
	pad := 0.06 // room left and right, so end points stay clear of the axes
	fx := func(x float64) float64 { return float64(x0) + (pad+(1-2*pad)*pos(ax, x))*svgPanelW }
	fy := func(y float64) float64 { return float64(y0) + svgPanelH - pos(ay, y)*svgPanelH }
	label := func(a axis, v float64) string {
		if a.log {
			return fmtDecade(v)
		}
		return fmtTick(v, a.step)
	}
	fmt.Fprintf(b, `<g><text x="%.1f" y="%d" text-anchor="middle" font-size="13" font-weight="bold">%s</text>`+"\n",
		float64(x0)+svgPanelW/2, y0-10, esc(p.Title))
	for _, y := range ay.ticks {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", x0, fy(y), x0+svgPanelW, fy(y), svgGridGrey)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, fy(y)+4, label(ay, y))
	}
	for _, x := range ax.ticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333"/>`+"\n", fx(x), y0+svgPanelH, fx(x), y0+svgPanelH+5)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", fx(x), y0+svgPanelH+18, label(ax, x))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333333"/>`+"\n", x0, y0, svgPanelW, svgPanelH)
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(x0)+svgPanelW/2, y0+svgPanelH+36, esc(cmp.Or(p.XLabel, c.XLabel)))
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
		x0-44, float64(y0)+svgPanelH/2, esc(cmp.Or(p.YLabel, c.YLabel)))
	xy := func(pt Point) (float64, float64) { return fx(pt.X), fy(pt.Y) }
	for _, s := range p.Series {
		pts := slices.DeleteFunc(slices.Clone(s.Points), func(pt Point) bool { return !keep(pt) })
		writeLine(b, "series", s, pts, xy)
		for _, pt := range pts {
			x, y := xy(pt)
			writeMarker(b, s, x, y)
		}
	}
	b.WriteString("</g>\n")
}

// fmtDecade prints a power of ten as a tick label: 0.01, 0.1, 1, 10, 100,
// 1k, 10k, 100k, 1M, 10M.
func fmtDecade(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1:
		return fmt.Sprintf("%.0f", v)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// writeLine draws s's line through pts, mapped by xy, as a polyline of
// class "series" (in a panel) or "legend"; a lone point gets no line,
// only its marker.
func writeLine(b *strings.Builder, class string, s Series, pts []Point, xy func(Point) (float64, float64)) {
	if len(pts) < 2 {
		return
	}
	var coords []string
	for _, pt := range pts {
		x, y := xy(pt)
		coords = append(coords, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	dash := ""
	if s.Dashed {
		dash = ` stroke-dasharray="7,5"`
	}
	fmt.Fprintf(b, `<polyline class="%s" data-series="%s" points="%s" fill="none" stroke="%s" stroke-width="%g"%s/>`+"\n",
		class, esc(s.Name), strings.Join(coords, " "), s.Color, s.Width, dash)
}

func writeMarker(b *strings.Builder, s Series, x, y float64) {
	switch s.Marker {
	case "circle":
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"/>`+"\n", x, y, s.Color)
	case "square":
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="8" height="8" fill="white" stroke="%s" stroke-width="2"/>`+"\n", x-4, y-4, s.Color)
	}
}

// NiceScale returns a top for an axis from 0 that holds v, and a tick step
// of 1, 2 or 5 times a power of ten giving four to eight ticks.
func NiceScale(v float64) (top, step float64) {
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
