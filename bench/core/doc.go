// Package core is what every mode of the benchmark harness shares and
// measures nothing itself: the report's common parts (the machine, the
// settings, directions, round-trip times, the implementations compared),
// statistics (median, percentile, ratio), aligned tables, the progress
// indicator, and what the operating system says about the process and the
// machine (CPU time, CPU model, kernel, load average).
//
// Its subpackages are the rest of the shared core: svg draws charts,
// cpuprof profiles measured intervals and splits them by stage, memrig is
// a tunnel under test with in-memory ends, and nsenv runs tunnels and
// tools in network namespaces. The modes (bench/mem, bench/netns,
// bench/loadgen, bench/soak, bench/flood, bench/peers) use these
// packages and never each other; package bench puts their reports
// together.
package core
