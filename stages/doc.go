// Package stages is PipeGuard's dataplane: the actors of the staged
// pipeline, the bounded channels that join them and how they are wired, and
// the sequential baseline engine built from the same per-packet step
// functions.
//
//	inbound:  UDP ─► udprecv ─► decrypt pool ─► route-in ─► tunwrite ─► TUN
//	                    └─► handshake actor
//	outbound: TUN ─► tunread ─► route-out ─► encrypt pool ─► udpsend ─► UDP
//
// Packets travel as values (inItem, outItem: a wire.Packet and a few words
// of metadata) through channels whose capacities are set in one place
// (config.go). Worker pools keep order by round-robin: the stage before a
// pool hands packet i to worker i mod N, and the stage after it collects
// from worker i mod N, so one peer's packets leave a pool in the order they
// entered. A worker that loses a packet (a malformed one, or one in hand
// when it panicked) still emits its slot, marked dropped, so the collector
// never falls out of step.
//
// Every stage is a struct with Serve(ctx) error, run under a supervisor;
// channels belong to the Tunnel that wires them and outlive restarts.
package stages
