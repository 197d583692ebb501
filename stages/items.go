package stages

import (
	"net/netip"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// inItem is an inbound packet between stages: the datagram as received,
// decrypted in place by a decrypt worker, and what the workers learned
// about it. It moves by value; the pointers in it are to long-lived shared
// state (peer, keypair), never to another stage's buffer.
type inItem struct {
	pkt     wire.Packet
	local   tunio.Local    // the host's address the datagram was sent to
	src     netip.AddrPort // outer source: the peer's endpoint if authenticated
	peer    *peer
	kp      *noise.Keypair
	counter uint64
	drop    DropReason // set when a worker dropped the packet but kept its slot
	// ecn is the outer header's ECN field as received, or CE once the
	// managed queue marked the packet; acceptStep carries it into the
	// inner header (RFC 6040).
	ecn wire.ECN
	_   [itemPad]byte
}

// outItem is an outbound packet between stages: the inner packet read from
// the TUN device, then the datagram sealed in place.
type outItem struct {
	pkt     wire.Packet
	local   tunio.Local // the host's address to send from; zero: routing picks
	dst     netip.AddrPort
	peer    *peer
	kp      *noise.Keypair
	counter uint64 // reserved by routeStep (in route-out), in packet order
	drop    DropReason
	ecn     wire.ECN // the outer header's ECN field, from the inner one's (routeStep)
	_       [itemPad]byte
}

func (it *inItem) markDropped(r DropReason)  { it.drop = r }
func (it *outItem) markDropped(r DropReason) { it.drop = r }

// tunPacket is an accepted inner packet on its way from route-in to
// tunwrite.
type tunPacket struct {
	wire.Packet
	_ [tunPacketPad]byte
}

// Padding that makes each item a whole number of 128-byte blocks (two
// cache lines, the unit of the adjacent-line prefetcher), so that queue
// slots never share a cache line: the producer filling slot k+1 would
// otherwise steal the line the consumer is reading at the end of slot k,
// once per packet. TestItemSizes checks the sums. (local sits right after
// pkt, in the bytes that aligning src would leave empty.)
const (
	itemPad      = 8
	tunPacketPad = 92
)
