// Package nsenv runs tunnels under test, and the tools that measure them,
// in network namespaces: the shared lab of the namespace modes
// (bench/netns, bench/loadgen, bench/soak). It measures nothing itself.
//
// Open builds cmd/headless-client and cmd/wgpeer once for the run and
// makes two namespaces joined by a veth pair (Env); StartTunnel starts
// PipeGuard (with an engine) or wireguard-go at one end, Pair at both,
// all at TUN MTU 1280. Processes in the namespaces (Proc) are started
// through `ip netns exec` in their own process group and die with the
// harness; ProcCPU, ProcRSS and ProcPeakRSS read them from /proc.
// ParseIperf3 and ParsePing read the output of iperf3 and ping, which the
// modes run there with RunIn.
//
// Everything it makes is named with a recognisable prefix and the
// harness's pid and removed by Close, also when a mode's context ends
// (cmd/bench cancels it on SIGINT and SIGTERM); what a killed run left
// is removed by the next one (RemoveStale).
//
// Subpackage nsenvtest holds the helpers of the modes' tests: skip or
// fail when namespaces cannot be used, and check that nothing was left.
package nsenv
