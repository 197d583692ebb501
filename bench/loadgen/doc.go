// Package loadgen measures one tunnel end under a load the harness makes
// itself (cmd/bench --mode loadgen, Linux and root), as a user whose peer
// is another machine sees it: one tunnel process at a time (PipeGuard
// with each engine, then wireguard-go) runs in namespace A of nsenv's
// pair, and the harness plays its peer from namespace B, so that the far
// end costs almost nothing (loadPeer): a real handshake with package
// noise, as initiator (it answers the tunnel's own handshakes too).
//
// Inbound, it sends full-size inner UDP packets sealed ahead
// (sealedRing): before each inbound cell, a ring of transport datagrams
// under consecutive counters of the session is sealed on every CPU while
// no clock runs (sized for the cell at 1 Mpps, at most 4 GiB and half the
// available memory, mapped once per run apart from the Go heap); during
// the cell the generator only hands them to sendmmsg with UDP GSO, and
// seals on the fly, counted and warned about, only if the ring runs out.
// Keepalives wait while a ring is in use, and a cell must end on the
// session it began on (at most 100 s, under Rekey-After-Time). Their
// destination is blackholed in A, and the TUN interface's counters
// (/proc/<pid>/net/dev) count what the tunnel delivered. Outbound, a
// sender in A floods an address routed into the tunnel with UDP GSO, and
// the harness receives with recvmmsg and UDP GRO, counting full-size data
// messages under its sessions in place and authenticating one in 64.
//
// A window bounds the packets in flight (flood, window): over a veth pair
// a flood meets no backpressure, so without it the generator would spend
// a core on packets the tunnel's socket drops. Once it only sends, what
// the generator spends is mostly thread switches, so its sockets are its
// own (rawudp.Conn: blocking, outside the runtime's epoll set, which would
// wake a thread for every datagram in and out, raw system calls) and it
// sleeps a millisecond at a time when its window is full or its socket
// drained. While it measures, the harness's threads are pinned to the
// last CPU with GOMAXPROCS 1, and its own CPU time (getrusage) is
// reported beside the tunnel's.
package loadgen
