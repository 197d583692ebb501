package stages

import (
	"encoding/binary"

	"pipeguard/tunio"
	"pipeguard/wire"
)

// badSize counts a datagram of a size no WireGuard message of ours has.
// A transport message longer than the largest one (the socket kept only
// its head) carries an inner packet above 1280 bytes: a peer whose MTU is
// larger than PipeGuard's sent it. That is DropTooBig, and the peer the
// message's receiver index belongs to is told once, with the fix, in the
// log. (The head is not authenticated; at worst a forged one costs one
// misleading log line per peer.) Anything else is DropMalformed.
func (t *Tunnel) badSize(m *tunio.Datagram, c *stageCounters) {
	var h wire.TransportHeader
	err := wire.ErrShort
	if m.Trunc {
		h, err = wire.ParseTransportHeader(m.Buf[:min(len(m.Buf), wire.MaxMessageSize)])
	}
	if err != nil {
		c.drop(DropMalformed)
		return
	}
	c.drop(DropTooBig)
	_, p, ok := t.keypairByIndex(h.Receiver)
	if !ok || !p.toldTooBig.CompareAndSwap(false, true) {
		return
	}
	t.log.Warn("peer sends packets larger than 1280 bytes, which PipeGuard cannot carry and drops: set MTU = 1280 on that peer",
		"peer", p.name(), "endpoint", m.Addr, "reason", DropTooBig.String())
}

// cutShort reports an IP packet whose header declares more bytes than p
// holds.
func cutShort(p []byte) bool {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(p[2:])) > len(p)
	case len(p) >= 40 && p[0]>>4 == 6:
		return 40+int(binary.BigEndian.Uint16(p[4:])) > len(p)
	}
	return false
}
