// Package bench is the benchmark harness's entry point: cmd/bench is its
// command line, and Run measures what a Config names, prints the table and
// writes the report as JSON, the chart as SVG and the CPU and allocation
// profiles. It measures nothing itself: each thing measured is a package
// of its own, which Run calls and whose report it puts together:
//
//   - bench/mem: whole tunnels in memory, the pipeline against the
//     sequential engine and the AEAD's limit (the default mode);
//   - bench/netns: PipeGuard against wireguard-go over real TUN devices in
//     network namespaces, TCP by iperf3 and RTT by ping;
//   - bench/loadgen: one tunnel end under a load the harness makes itself;
//   - bench/soak: two ends for a long time, watched for growth;
//   - bench/flood: bulk data under a handshake flood, in memory;
//   - bench/peers: PipeGuard and wireguard-go configured with many
//     peers, in network namespaces.
//
// They sit over the shared core in bench/core (the report's common
// parts, statistics, tables, progress; core/svg charts, core/cpuprof
// profiles, core/memrig the in-memory tunnel, core/nsenv the namespaces
// and processes). Imports run one way: a mode uses the core and never
// another mode (TestImportsOneWay checks it).
package bench
