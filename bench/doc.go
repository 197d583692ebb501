// Package bench measures PipeGuard's dataplane: the pipeline engine against
// the sequential baseline, and both against the AEAD's limit, on whole
// tunnels with in-memory ends and real cryptography.
//
// The in-memory harness keeps the cost of producing traffic out of what it
// measures: inbound datagrams are sealed before the clock starts and served
// by a feed connection that only copies them, as a kernel's recvmmsg would;
// outbound, the TUN source copies one template packet and the UDP sink only
// counts.
package bench
