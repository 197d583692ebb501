// Package mem measures whole PipeGuard tunnels in memory (cmd/bench
// --mode mem, the default; no root needed): the pipeline engine against
// the sequential baseline, and both against the ChaCha20-Poly1305 limit,
// with in-memory ends and real cryptography (package memrig). Making
// traffic stays out of what is measured.
//
// It sweeps the direction (inbound, outbound, both at once), the engine,
// GOMAXPROCS, the pipeline's crypto workers, the inner packet size and
// the number of peers, and reports for each throughput, packet rate, CPU
// and heap allocations per packet, the pipeline's ratio to the sequential
// engine and the row's share of the AEAD limit (the same size opened on
// as many cores in parallel). One profiled pipeline measurement gives the
// share of CPU per stage (package cpuprof).
package mem
