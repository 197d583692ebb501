package bench

import (
	"cmp"
	"fmt"
)

// Colours of the namespace mode's lines, the same in every panel: PipeGuard
// in purple (the pipeline strong, the sequential engine light), and
// wireguard-go in near-black; in-memory lines use blue, orange and green.
var netnsColors = map[tunnelKind]string{
	{ImplPipeGuard, "pipeline"}:       "#6a3d9a",
	{ImplPipeGuard, engineSequential}: "#b79fd6",
	{Impl: ImplWireguardGo}:           "#222222",
}

// tunnelSeries is an empty line for tunnel k, drawn alike in every
// namespace panel: its name, its colour, and the pipeline engine's line
// thicker, with round markers.
func tunnelSeries(k tunnelKind) series {
	name := k.Impl
	if k.Impl == ImplPipeGuard {
		name = "PipeGuard " + k.Engine
	}
	s := series{name: name, color: cmp.Or(netnsColors[k], "#888888"), width: 2, marker: "square"}
	if k.Engine == "pipeline" {
		s.width, s.marker = 3, "circle"
	}
	return s
}

// netnsChart adds to c a row of panels (at row) for the namespace mode:
// for each direction, TCP throughput against iperf3 streams, a line per
// tunnel.
func netnsChart(r *Report, c chart, row int) chart {
	nr := r.Netns
	c.subtitles = append(c.subtitles, fmt.Sprintf("netns: %s, %d cores, %s; TUN MTU %d; iperf3 -t %d, medians of %d; wireguard-go %s",
		r.Machine.CPUModel, r.Machine.Cores, r.Machine.Date, nr.MTU, nr.TCPSeconds, r.Settings.Repeat, nr.WireguardGoVersion))
	for _, d := range []Direction{Outbound, Inbound} {
		p := panel{title: fmt.Sprintf("TCP %s, netns", d), xLabel: "iperf3 TCP streams", yLabel: "TCP Gbit/s", row: row}
		for _, run := range nr.Runs {
			s := tunnelSeries(tunnelKind{run.Impl, run.Engine})
			for _, tc := range run.TCP {
				if tc.Direction == d {
					s.points = append(s.points, point{float64(tc.Streams), tc.Gbps})
				}
			}
			p.add(s)
		}
		c.panels = append(c.panels, p)
	}
	return c
}
