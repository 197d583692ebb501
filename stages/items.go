package stages

import (
	"net/netip"

	"pipeguard/noise"
	"pipeguard/wire"
)

// inItem is an inbound packet between stages: the datagram as received,
// decrypted in place by a decrypt worker, and what the workers learned
// about it. It moves by value; the pointers in it are to long-lived shared
// state (peer, keypair), never to another stage's buffer.
type inItem struct {
	pkt     wire.Packet
	src     netip.AddrPort // outer source: the peer's endpoint if authenticated
	peer    *peer
	kp      *noise.Keypair
	counter uint64
	drop    DropReason // set when a worker dropped the packet but kept its slot
}

// outItem is an outbound packet between stages: the inner packet read from
// the TUN device, then the datagram sealed in place.
type outItem struct {
	pkt     wire.Packet
	dst     netip.AddrPort
	peer    *peer
	kp      *noise.Keypair
	counter uint64 // reserved by route-out, in packet order
	drop    DropReason
}
