// Package bench measures PipeGuard's dataplane: the pipeline engine against
// the sequential baseline, and both against the AEAD's limit, on whole
// tunnels with in-memory ends and real cryptography. cmd/bench is its
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
// The namespace mode (real TUN devices, iperf3 and ping, against
// wireguard-go) enters at runNetns; ParseIperf3 and ParsePing read its
// tools' output, and NetnsReport holds its figures.
package bench
