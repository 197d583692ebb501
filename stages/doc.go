// Package stages is PipeGuard's dataplane: the actors of the staged
// pipeline, the bounded queues that join them and how they are wired, and
// the sequential baseline engine built from the same per-packet step
// functions.
//
//	inbound:  UDP ─► udprecv ─► decrypt pool ─► tunwrite (ordered checks) ─► TUN
//	                    └─► handshake actor
//	outbound: TUN ─► tunread (routing) ─► encrypt pool ─► udpsend ─► UDP
//
// Packets travel as values (inItem, outItem, wire.Packet: fixed arrays and
// a few words of metadata) through bounded single-producer,
// single-consumer queues (package spsc) whose capacities are set in one
// place (config.go). The edge stages read into and write from the slots
// of the pools' queues: udprecv and tunread read a batch straight into the
// slots of the workers' input queues (tunread routes each packet in its
// slot), the workers let the AEAD write its output into their output
// queue's slot, and tunwrite (after the ordered checks: replay window,
// cryptokey routing) and udpsend write the batch straight from those
// slots. So a packet is copied exactly where the sequential engine copies
// it, and no two stages ever hold the same slot. Handshake messages take a
// Go channel to the handshake actor: they are rare, and that queue drops
// when full.
//
// Worker pools keep order by turns: the stage before a pool hands runs of
// consecutive packets to the workers in turn, and the stage after it
// collects from them in the same turns (roundRobin), so one peer's packets
// leave a pool in the order they entered. A worker that loses a packet (a
// malformed one, or one in hand when it panicked) still emits its slot,
// marked dropped, so the collector never falls out of step.
//
// A small batch read while its direction's pool and collector hold
// nothing skips the hand-offs: the edge stage that read it runs the
// remaining steps itself (inline.go). Hand-offs pay when there is work to
// spread over the cores; for a lone packet they only add wake-ups.
//
// Every stage is a struct with Serve(ctx) error, run under a supervisor;
// queues belong to the Tunnel that wires them and outlive restarts, and a
// restarted stage tidies what its predecessor held (spsc.Queue.InHand),
// counting those packets as lost to the panic.
package stages
