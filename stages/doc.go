// Package stages is PipeGuard's dataplane: the actors of the staged
// pipeline, the bounded queues that join them and how they are wired, and
// the sequential baseline engine built from the same per-packet step
// functions.
//
//	inbound:  UDP ─► udprecv ─► [managed queue] ─► dispatch-in ─► decrypt pool ─► route-in ─► tunwrite ─► TUN
//	                    └─► handshake workers
//	outbound: TUN ─► tunread ─► [managed queue] ─► route-out ─► encrypt pool ─► udpsend ─► UDP
//
// The managed queues (package fq, aqm.go) are the one place per direction
// where packets may wait in numbers: the edge stages only read from the
// kernel into them, so that the kernel's queues stay short, and the stage
// after takes packets out flow by flow (new flows first) past a CoDel
// controller that drops or marks ECN before any work is spent on them.
// Every queue after them holds about a batch (config.go).
//
// Packets travel as values (inItem, outItem, tunPacket: fixed arrays and
// a few words of metadata) in preallocated slots: of the managed queues,
// and of bounded single-producer, single-consumer queues (package spsc)
// between the stages after them, whose capacities are set in one place
// (config.go). A value is copied once per hop: udprecv reads a batch
// straight into the managed queue's slots, dispatch-in copies each
// datagram into a decrypt worker's input queue, each worker lets the AEAD
// write its output into its output queue's slot, route-in runs the
// ordered checks there (acceptStep: replay window, cryptokey routing, ECN
// from the outer header) and copies each accepted inner packet into
// tunwrite's queue, and tunwrite writes the batch from those slots.
// Outbound, tunread reads into the managed queue's slots, route-out
// routes each packet in its slot (routeStep: peer, keypair, counter, in
// the order the queue hands them out) and copies it into an encrypt
// worker's input queue, the worker seals into its output queue's slot,
// and udpsend sends from there. No two stages ever hold the same slot.
// Handshake messages take a Go channel to a small pool of handshake
// workers: they are rare, and that queue drops when full; the workers'
// Curve25519 work is bounded by a budget calibrated as a share of the
// cores (hsbudget.go).
//
// Worker pools keep order by turns: the stage before a pool (dispatch-in,
// route-out) hands runs of consecutive packets to the workers in turn,
// and the stage after it (route-in, udpsend) collects from them in the
// same turns (roundRobin), so one peer's packets leave a pool in the order
// they entered. A worker that loses a packet (a malformed one, or one in
// hand when it panicked) still emits its slot, marked dropped, so the
// collector never falls out of step.
//
// A small batch read while its direction's pipeline holds nothing skips
// the hand-offs: the edge stage that read it runs the remaining steps
// itself, routing included (inline.go). Hand-offs pay when there is work
// to spread over the cores; for a lone packet they only add wake-ups. And
// while other tasks wait for a CPU, the stage after the managed queue
// runs every run of packets so, unless the pools prove they deliver more
// (spread.go).
//
// Every stage is a struct with Serve(ctx) error, run under a supervisor;
// queues belong to the Tunnel that wires them and outlive restarts, and a
// restarted stage tidies what its predecessor held (spsc.Queue.InHand),
// counting those packets as lost to the panic.
package stages
