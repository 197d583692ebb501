// Package stages is PipeGuard's dataplane: the actors of the staged
// pipeline, the bounded queues that join them and how they are wired, and
// the sequential baseline engine built from the same per-packet step
// functions.
//
//	inbound:  UDP ─► udprecv ─► decrypt pool ─► route-in ─► tunwrite ─► TUN
//	                    └─► handshake actor
//	outbound: TUN ─► tunread ─► route-out ─► encrypt pool ─► udpsend ─► UDP
//
// Packets travel as values (inItem, outItem, wire.Packet: fixed arrays and
// a few words of metadata) through bounded single-producer,
// single-consumer queues (package spsc) whose capacities are set in one
// place (config.go). A stage works on a packet in the slot of its input
// queue and hands it on by copying it into the next stage's queue, or, in
// the crypto pools, by letting the AEAD write its output there; the edge
// stages read from and write to the device and the socket straight from
// the slots. So each hop costs one copy, and no two stages ever hold the
// same slot. Handshake messages take a Go channel to the handshake actor:
// they are rare, and that queue drops when full.
//
// Worker pools keep order by round-robin: the stage before a pool hands
// packet i to worker i mod N, and the stage after it collects from worker
// i mod N, so one peer's packets leave a pool in the order they entered. A
// worker that loses a packet (a malformed one, or one in hand when it
// panicked) still emits its slot, marked dropped, so the collector never
// falls out of step.
//
// Every stage is a struct with Serve(ctx) error, run under a supervisor;
// queues belong to the Tunnel that wires them and outlive restarts, and a
// restarted stage tidies what its predecessor held (spsc.Queue.InHand),
// counting those packets as lost to the panic.
package stages
