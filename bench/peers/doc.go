// Package peers is the bench's peers mode: how a tunnel's configuration,
// memory and idle CPU grow with its number of peers, PipeGuard beside
// the newest wireguard-go (cmd/wgpeer, built from the module), each
// started empty in a network namespace and configured with wg(8) alone.
//
// For each implementation and each number of peers N it starts a fresh
// tunnel and, in this order:
//   - writes N peers as a gateway has them (a random key, one IPv4 /32
//     and one IPv6 /128, an endpoint the namespace cannot route to, so
//     that nothing leaves it) and times `wg setconf`;
//   - times `wg show dump` and checks it lists N peers;
//   - reads the process's RSS and OS threads;
//   - measures its CPU over the idle window, with no keepalives;
//   - times one peer added and one removed, each one UAPI request from
//     the harness (the tunnel's time, without wg's process start);
//   - turns a persistent keepalive of 25 s on for every other peer with
//     `wg addconf`, and measures the CPU again over the idle window.
//     These peers have no session and no reachable endpoint, so what it
//     shows is the cost of their handshake attempts, as it would be for
//     a gateway whose keepalive peers are away.
//
// wireguard-go refuses more than 65,536 peers (MaxPeers); its cells say
// so above that. Bytes per peer are the RSS above the same
// implementation's smallest N, divided by the peers added.
//
// Not measured here yet: an active peer's throughput and round-trip time
// beside N idle ones, and a burst of handshakes; goroutines (the tunnel
// command serves no metrics), whose count stages' tests check instead.
package peers
