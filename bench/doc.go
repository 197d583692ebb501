// Package bench measures PipeGuard's dataplane: the pipeline engine against
// the sequential baseline, and both against the AEAD's limit, on whole
// tunnels with in-memory ends and real cryptography; and both against
// wireguard-go over real TUN devices in network namespaces. cmd/bench is its
// command line; Run is the whole harness (sweep, table, JSON, SVG chart,
// profiles), and Rig is one tunnel under test, which the Go benchmarks in
// bench_test.go use too.
//
// The in-memory harness keeps the cost of producing traffic out of what it
// measures: inbound datagrams are sealed before the clock starts and served
// by a feed connection that only copies them, as a kernel's recvmmsg would;
// outbound, the TUN source copies one template packet and the UDP sink only
// counts. A measurement runs in rounds (seal with the clock stopped, run
// with it running) until its measured time reaches the duration; CPU time
// (getrusage) and heap allocations (runtime.MemStats) are read at the
// edges of each measured interval, and so is the CPU profile behind the
// share of CPU per stage.
//
// The namespace mode (runNetns, Linux and root) measures whole tunnels as
// a user runs them: it builds cmd/headless-client and cmd/wgpeer once,
// makes two network namespaces joined by a veth pair, and in them runs,
// one after another, PipeGuard with each engine and wireguard-go, a
// process at each end, all at TUN MTU 1280. iperf3 (TCP, one and four
// streams, each direction) and ping (idle, and during a TCP run) measure
// them; the tunnel processes' CPU time and peak RSS come from /proc.
// ParseIperf3 and ParsePing read the tools' output, and NetnsReport holds
// the figures and the ratios PipeGuard / wireguard-go and pipeline /
// sequential. Everything it makes is named with a recognisable prefix and
// the harness's pid and removed before it returns, also when its context
// ends (cmd/bench cancels it on SIGINT and SIGTERM); what a killed run
// left is removed by the next one.
package bench
