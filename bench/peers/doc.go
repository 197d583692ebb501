// Package peers is the bench's peers mode: how a tunnel's configuration,
// memory, idle CPU, traffic and handshakes fare with its number of peers,
// PipeGuard beside the newest wireguard-go (cmd/wgpeer, built from the
// module), each started empty in a network namespace and configured with
// wg(8) alone.
//
// For each implementation and each number of peers N it starts a fresh
// tunnel (PipeGuard serving its metrics on the namespace's loopback) and,
// in this order:
//   - writes N peers as a gateway has them (a random key, one IPv4 /32
//     and one IPv6 /128, an endpoint the namespace cannot route to, so
//     that nothing leaves it), and one real peer, and times `wg setconf`;
//   - times `wg show dump` and checks it lists every peer;
//   - reads the process's RSS and OS threads, and PipeGuard's goroutines
//     from its metrics;
//   - measures its CPU over the idle window, with no keepalives;
//   - brings the interface up; the real peer (the harness, with package
//     noise, in the other namespace) completes a handshake; ping measures
//     the idle round trip to it through the tunnel, and the real peer
//     sends a stream of full-size packets, whose rate the tunnel's
//     interface counters give (realpeer.go);
//   - times one peer added and one removed, each one UAPI request from
//     the harness (the tunnel's time, without wg's process start);
//   - adds the burst's peers and plays the handshake burst: they all
//     start a handshake within a second, from many source addresses, and
//     retry as real initiators do; how long until every one has a
//     session, and how many needed a cookie round (burst.go);
//   - turns a persistent keepalive of 25 s on for every other peer with
//     `wg addconf`, and measures the CPU again over the idle window.
//     These peers have no session and no reachable endpoint, so what it
//     shows is the cost of their handshake attempts, as it would be for
//     a gateway whose keepalive peers are away.
//
// wireguard-go refuses more than 65,536 peers (MaxPeers); its cells say
// so above that. Bytes per peer, and the traffic figures' ratios, are
// over the same implementation's row with the fewest peers.
package peers
