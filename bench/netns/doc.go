// Package netns measures PipeGuard against wireguard-go over real TUN
// devices (cmd/bench --mode netns, Linux and root): two network
// namespaces joined by a veth pair (package nsenv), and in them, one
// after another, PipeGuard with each engine and wireguard-go, a tunnel
// process at each end, all at TUN MTU 1280. iperf3 (TCP, one and four
// streams, each direction) and ping (idle, and during a TCP run) measure
// them; the tunnel processes' CPU time and peak RSS come from /proc.
//
// The report holds the figures, medians over the repeats, and the ratios
// PipeGuard / wireguard-go and pipeline / sequential, for the table, the
// JSON and a row of the chart.
package netns
