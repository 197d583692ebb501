package netns

import (
	"fmt"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
)

// AddChart adds to c a row of panels (at row) for the namespace mode:
// for each direction, TCP throughput against iperf3 streams, a line per
// tunnel; m and st say where and how the figures were measured.
func (nr *Report) AddChart(c svg.Chart, m core.Machine, st core.Settings, row int) svg.Chart {
	c.Subtitles = append(c.Subtitles, fmt.Sprintf("netns: %s, %d cores, %s; TUN MTU %d; iperf3 -t %d, medians of %d; wireguard-go %s",
		m.CPUModel, m.Cores, m.Date, nr.MTU, nr.TCPSeconds, st.Repeat, nr.WireguardGoVersion))
	for _, d := range []core.Direction{core.Outbound, core.Inbound} {
		p := svg.Panel{Title: fmt.Sprintf("TCP %s, netns", d), XLabel: "iperf3 TCP streams", YLabel: "TCP Gbit/s", Row: row}
		for _, run := range nr.Runs {
			s := core.KindSeries(core.Kind{Impl: run.Impl, Engine: run.Engine, Unmanaged: run.Unmanaged})
			for _, tc := range run.TCP {
				if tc.Direction == d {
					s.Points = append(s.Points, svg.Point{X: float64(tc.Streams), Y: tc.Gbps})
				}
			}
			p.Add(s)
		}
		c.Panels = append(c.Panels, p)
	}
	return c
}
