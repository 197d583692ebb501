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
//
// The load generator mode (runLoadgen, Linux and root) measures one end,
// as a user whose peer is another machine sees it: one tunnel process at
// a time (each engine, then wireguard-go) runs in namespace A of the same
// pair, and the harness itself plays its peer from namespace B, so that
// the far end costs almost nothing (loadPeer): a real handshake with
// package noise, as initiator (it answers the tunnel's own handshakes
// too). Inbound, it sends full-size inner UDP packets sealed ahead
// (sealedRing): before each inbound cell, a ring of transport datagrams
// under consecutive counters of the session is sealed on every CPU while
// no clock runs (sized for the cell at 1 Mpps, at most 4 GiB and half the
// available memory, mapped once per run apart from the Go heap); during
// the cell the generator only hands them to sendmmsg with UDP GSO, and
// seals on the fly, counted and warned about, only if the ring runs out.
// Keepalives wait while a ring is in use, and a cell must end on the
// session it began on (at most 100 s, under Rekey-After-Time). Their
// destination is blackholed in A, and the TUN interface's counters
// (/proc/<pid>/net/dev) count what the tunnel delivered. Outbound, a
// sender in A floods an address routed into the tunnel with UDP GSO, and
// the harness receives with recvmmsg and UDP GRO, counting full-size data
// messages under its sessions in place and authenticating one in 64. A
// window bounds the packets in flight (flood, window): over a veth pair a
// flood meets no backpressure, so without it the generator would spend a
// core on packets the tunnel's socket drops. Once it only sends, what the
// generator spends is mostly thread switches, so its sockets are its own
// (rawUDP: blocking, outside the runtime's epoll set, which would wake a
// thread for every datagram in and out, raw system calls) and it sleeps a
// millisecond at a time when its window is full or its socket drained.
// While it measures, the harness's threads are pinned to the last CPU
// with GOMAXPROCS 1, and its own CPU time (getrusage) is reported beside
// the tunnel's.
package bench
