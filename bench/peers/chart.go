package peers

import (
	"fmt"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
	"pipeguard/stages"
)

// Chart draws the mode's memory and configuration time against the
// number of peers, both axes logarithmic: RSS, and wg setconf's seconds,
// a line per implementation (wireguard-go's ends where it refuses).
func (r *Report) Chart(m core.Machine) svg.Chart {
	c := svg.Chart{Title: "PipeGuard against wireguard-go: many peers",
		Subtitles: []string{fmt.Sprintf("peers mode: %s, %d cores, %s; each tunnel empty in a namespace, configured with wg setconf; PipeGuard %s, wireguard-go %s",
			m.CPUModel, m.Cores, m.Date, r.Revision, r.WireguardGo)},
		XLabel: "peers"}
	panels := []struct {
		title, ylabel string
		y             func(Row) float64
	}{
		{"resident memory", "RSS MiB", func(r Row) float64 { return float64(r.RSSBytes) / (1 << 20) }},
		{"wg setconf", "seconds", func(r Row) float64 { return r.SetconfSeconds }},
	}
	for _, pd := range panels {
		p := svg.Panel{Title: pd.title, YLabel: pd.ylabel, LogX: true, LogY: true}
		for _, impl := range []string{ImplPipeGuard, ImplWireguardGo} {
			k := core.Kind{Impl: impl}
			if impl == ImplPipeGuard {
				k.Engine = string(stages.EnginePipeline)
			}
			s := core.KindSeries(k)
			for _, row := range r.Rows {
				if row.Impl == impl && !row.Refused {
					s.Points = append(s.Points, svg.Point{X: float64(row.Peers), Y: pd.y(row)})
				}
			}
			p.Add(s)
		}
		c.Panels = append(c.Panels, p)
	}
	return c
}
