// Package netns measures PipeGuard against wireguard-go over real TUN
// devices (cmd/bench --mode netns, Linux and root): two network
// namespaces joined by a veth pair (package nsenv), and in them, one
// after another, PipeGuard with each engine and wireguard-go, a tunnel
// process at each end, all at TUN MTU 1280. iperf3 (TCP, one and four
// streams, each direction) measures them; the tunnel processes' CPU time
// and peak RSS come from /proc. Each PipeGuard engine runs with its
// managed queues on and, for comparison, off.
//
// The latency-under-load table measures what a packet outside the bulk
// transfer waits for: ping and a sparse UDP request/response probe (64
// bytes, 100 a second, echoed in the far namespace), idle and during four
// TCP streams outbound, inbound and both ways at once.
//
// The report holds the figures, medians over the repeats, and the ratios
// PipeGuard / wireguard-go, pipeline / sequential and queue management
// on / off, for the table, the JSON and a row of the chart.
package netns
