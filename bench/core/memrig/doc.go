// Package memrig is a whole PipeGuard tunnel under test with in-memory
// ends and real cryptography (Rig), and the measurement of it in rounds
// (Measure, Measurement): the shared harness of the in-memory modes,
// bench/mem and bench/flood. It measures what its caller asks for.
//
// It keeps the cost of producing traffic out of what it measures: inbound
// datagrams are sealed before the clock starts and served by a feed
// connection that only copies them, as a kernel's recvmmsg would;
// outbound, the TUN source copies one template packet and the UDP sink
// only counts. A measurement runs in rounds (seal with the clock stopped,
// run with it running) until its measured time reaches the duration; CPU
// time (getrusage) and heap allocations (runtime.MemStats) are read at
// the edges of each measured interval, and so is the CPU profile behind
// the share of CPU per stage (package cpuprof).
package memrig
