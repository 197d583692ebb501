// Package soak measures growth over time (cmd/bench --mode soak, Linux
// and root): months of unattended running show first as growth of
// memory, of goroutines, or of packets lost to a stage that panicked.
// Two PipeGuard clients (standalone, the pipeline engine) run in network
// namespaces joined by a veth pair (package nsenv) and carry iperf3
// --bidir and ping for a long time, while each end is reloaded with
// SIGHUP and its peer changed with wg set at intervals; every change must
// show in wg show. Every 10 s the harness reads each process's resident
// set and, from its metrics endpoint, its goroutines, Go heap, GC cycles,
// panic drops and stage restarts.
//
// The report holds the series, the changes and a one-line summary; the
// soak fails when a bound breaks (last RSS over first × 1.1 + 2 MiB, last
// goroutines over first + 5, any panic drop) or a change did not apply.
package soak
