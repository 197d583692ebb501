package wire

// MaxInnerSize is the largest inner IP packet PipeGuard carries: the tunnel
// MTU. 1280 bytes is the IPv6 minimum MTU, so the outer datagram (1280 + 32
// bytes of WireGuard overhead + UDP/IP headers) crosses any path without IP
// fragmentation. It is a multiple of PadMultiple, so padding never grows a
// full-size packet.
const MaxInnerSize = 1280

// PadMultiple is the granularity WireGuard pads plaintexts to, so that
// ciphertext lengths leak less about the inner packets.
const PadMultiple = 16

// MaxMessageSize is the largest datagram PipeGuard sends or accepts: a
// transport message carrying a full-size inner packet. Every handshake
// message is smaller.
const MaxMessageSize = TransportHeaderSize + MaxInnerSize + TagSize

// Packet is the value the pipeline's channels carry: one fixed array with
// room for the transport header before the inner packet and the AEAD tag
// after it, so that sealing and opening happen in place and a stage never
// shares memory with another.
//
// Layout: Buf[0:16] transport header, Buf[16:16+InnerLen] inner packet
// (plaintext, possibly padded), then the tag. When Packet holds a whole
// datagram (a handshake or transport message), it starts at Buf[0] and is
// MsgLen bytes long.
//
// The zero value is an empty packet. A Packet is a plain value: copy it to
// hand it on; it has no concurrency rules of its own.
type Packet struct {
	Buf      [MaxMessageSize]byte
	InnerLen uint16 // bytes of inner packet at Buf[TransportHeaderSize:]
	MsgLen   uint16 // bytes of datagram at Buf[0:]
}

// InnerOffset is where the inner packet starts in Packet.Buf.
const InnerOffset = TransportHeaderSize

// Inner returns the inner packet as a slice of p.Buf.
func (p *Packet) Inner() []byte {
	return p.Buf[InnerOffset : InnerOffset+int(p.InnerLen)]
}

// Message returns the datagram as a slice of p.Buf.
func (p *Packet) Message() []byte {
	return p.Buf[:p.MsgLen]
}

// SetInner copies b into the inner slot and sets InnerLen. It returns
// ErrTooLarge, leaving p unchanged, if b exceeds MaxInnerSize.
func (p *Packet) SetInner(b []byte) error {
	if len(b) > MaxInnerSize {
		return ErrTooLarge
	}
	p.InnerLen = uint16(copy(p.Buf[InnerOffset:], b))
	return nil
}

// SetMessage copies a received datagram into p and sets MsgLen. It returns
// ErrTooLarge, leaving p unchanged, if b exceeds MaxMessageSize.
func (p *Packet) SetMessage(b []byte) error {
	if len(b) > MaxMessageSize {
		return ErrTooLarge
	}
	p.MsgLen = uint16(copy(p.Buf[:], b))
	return nil
}

// PaddedLen returns n rounded up to a multiple of PadMultiple, capped at
// MaxInnerSize (the MTU). A keepalive (n == 0) stays empty.
func PaddedLen(n int) int {
	padded := (n + PadMultiple - 1) &^ (PadMultiple - 1)
	return min(padded, MaxInnerSize)
}

// Pad zero-fills the inner packet up to PaddedLen(InnerLen) and returns the
// padded plaintext, ready to be sealed in place.
func (p *Packet) Pad() []byte {
	n := int(p.InnerLen)
	padded := PaddedLen(n)
	clear(p.Buf[InnerOffset+n : InnerOffset+padded])
	p.InnerLen = uint16(padded)
	return p.Inner()
}
