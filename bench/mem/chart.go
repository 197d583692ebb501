package mem

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
)

// Colours per direction: the pipeline strong, the sequential baseline the
// same hue, lighter.
var dirColors = map[core.Direction][2]string{
	core.Inbound:  {"#1f5fa8", "#8fb6e0"},
	core.Outbound: {"#c2530a", "#f2ac74"},
	core.Both:     {"#2b8a3e", "#94d3a2"},
}

// Chart makes the chart of the in-memory figures: for each size, at the
// fewest peers, each engine and direction against GOMAXPROCS. A pipeline
// point is the run with as many workers as GOMAXPROCS, else the fastest.
// m and st say where and how they were measured.
func (mr *Report) Chart(m core.Machine, st core.Settings) svg.Chart {
	c := svg.Chart{
		Title:  "PipeGuard in memory: throughput against cores",
		XLabel: "GOMAXPROCS (cores)",
		YLabel: "inner Gbit/s",
	}
	if len(mr.Results) == 0 {
		return c
	}
	peers := slices.MinFunc(mr.Results, func(a, b Result) int { return cmp.Compare(a.Peers, b.Peers) }).Peers
	c.Subtitles = append(c.Subtitles, fmt.Sprintf("%s, %d cores, %s, %s; %d peer%s; pipeline with workers = GOMAXPROCS; medians of %d",
		m.CPUModel, m.Cores, m.GoVersion, m.Date, peers, core.Plural(peers), st.Repeat))
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
				best := map[int]Result{}
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
func preferred(r Result) bool { return r.Workers == r.Procs }
