package noise

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"

	"pipeguard/wire"
)

// Transport errors. Sentinels, so the hot path counts them without
// allocating.
var (
	ErrCounterExhausted = errors.New("noise: keypair send counter exhausted")
	ErrDecrypt          = errors.New("noise: transport message failed authentication")
	ErrMessageSize      = errors.New("noise: transport message has a bad size")
)

// Keypair is one session's transport keys, made by a completed handshake.
// Its keys are immutable; the send counter is atomic, so many encrypt
// workers may Seal concurrently, and Open is safe for concurrent use too.
// The replay window is not: the single stage that restores order after the
// decrypt pool owns it (see Replay).
//
// A Keypair is used through a pointer and never copied; the zero value is
// not usable: create one with NewKeypair.
type Keypair struct {
	send        cipher.AEAD
	recv        cipher.AEAD
	recvKey     [32]byte // for PeekInner, which needs the bare stream cipher
	sendCounter atomic.Uint64

	LocalIndex  uint32 // our index: the receiver field of messages to us
	RemoteIndex uint32 // the peer's index: the receiver field we send
	Initiator   bool   // whether we initiated the handshake that made it
	Created     time.Time

	// Replay is the receive window. Check it only after Open has
	// authenticated the message, and only from one goroutine, in the order
	// the messages arrived.
	Replay ReplayFilter
}

// NewKeypair builds a keypair from the two transport keys a handshake
// derived.
func NewKeypair(sendKey, recvKey *[32]byte, localIndex, remoteIndex uint32, initiator bool, created time.Time) *Keypair {
	send, err := chacha20poly1305.New(sendKey[:])
	if err != nil {
		panic(err) // unreachable: the key size is fixed by the type
	}
	recv, err := chacha20poly1305.New(recvKey[:])
	if err != nil {
		panic(err)
	}
	return &Keypair{
		send:        send,
		recv:        recv,
		recvKey:     *recvKey,
		LocalIndex:  localIndex,
		RemoteIndex: remoteIndex,
		Initiator:   initiator,
		Created:     created,
	}
}

// PeekSize is how much of an inner packet PeekInner reveals: one ChaCha20
// block, enough for an IPv4 header with the most options or an IPv6
// header, and the ports after either.
const PeekSize = 64

// PeekInner decrypts the first bytes of the transport message in p (up to
// PeekSize, never the tag) into dst without authenticating them, and
// returns how many it wrote. The result is for scheduling only: it is what
// the peer sent if the message is genuine, and noise an attacker cannot
// steer if it is not, since the bytes are only decrypted, never
// verified, and anything else about the message is still checked by Open.
// It costs one ChaCha20 block, against a whole message's for Open.
//
// ChaCha20-Poly1305 (RFC 8439) encrypts with the ChaCha20 stream from
// block 1 (block 0 keys Poly1305), under the nonce Seal used: 4 zero bytes
// and the little-endian counter.
func (kp *Keypair) PeekInner(dst *[PeekSize]byte, p *wire.Packet, counter uint64) int {
	n := int(p.MsgLen) - wire.InnerOffset - wire.TagSize
	if n <= 0 || int(p.MsgLen) > wire.MaxMessageSize {
		return 0
	}
	n = min(n, PeekSize)
	var nonce [chacha20.NonceSize]byte
	binary.LittleEndian.PutUint64(nonce[4:], counter)
	c, err := chacha20.NewUnauthenticatedCipher(kp.recvKey[:], nonce[:])
	if err != nil {
		return 0 // unreachable: the sizes are fixed
	}
	c.SetCounter(1)
	c.XORKeyStream(dst[:n], p.Buf[wire.InnerOffset:wire.InnerOffset+n])
	return n
}

// SendCount reports how many messages have been sealed (the next counter).
func (kp *Keypair) SendCount() uint64 { return kp.sendCounter.Load() }

// Seal pads p's inner packet, takes the next send counter and seals in
// place: ReserveCounter and SealAt in one call.
func (kp *Keypair) Seal(p *wire.Packet) (uint64, error) {
	counter, err := kp.ReserveCounter()
	if err != nil {
		return 0, err
	}
	kp.SealAt(p, counter)
	return counter, nil
}

// ReserveCounter takes the next send counter, or fails with
// ErrCounterExhausted once Reject-After-Messages is reached. The pipeline
// reserves counters in packet order before the parallel encrypt pool, so
// that a peer's counters rise in the order its packets were sent.
func (kp *Keypair) ReserveCounter() (uint64, error) {
	counter := kp.sendCounter.Add(1) - 1
	if counter >= RejectAfterMessages {
		// Keep the counter pinned so it cannot wrap around to reuse a nonce.
		kp.sendCounter.Store(RejectAfterMessages)
		return 0, ErrCounterExhausted
	}
	return counter, nil
}

// SealAt pads p's inner packet, writes the transport header with counter,
// and encrypts in place, leaving the datagram in p.Message(). An empty
// inner packet makes a keepalive. counter must come from ReserveCounter:
// sealing twice with one counter reuses a nonce.
func (kp *Keypair) SealAt(p *wire.Packet, counter uint64) { kp.SealTo(p, p, counter) }

// SealTo is SealAt with the datagram written to dst instead of in place:
// the encrypt pool seals straight into the next stage's slot, which spares
// a copy. src's inner packet is padded in place. dst and src are either
// the same packet or do not overlap.
func (kp *Keypair) SealTo(dst, src *wire.Packet, counter uint64) {
	plain := src.Pad()
	// The nonce is 4 zero bytes and the little-endian counter: exactly
	// Buf[4:16] of the header while the receiver field is still zero. Using
	// the header as the nonce spares a per-packet allocation, because a
	// stack nonce escapes through the cipher.AEAD interface.
	b := &dst.Buf
	b[0], b[1], b[2], b[3] = byte(wire.TypeTransport), 0, 0, 0
	binary.LittleEndian.PutUint32(b[4:8], 0)
	binary.LittleEndian.PutUint64(b[8:16], counter)
	kp.send.Seal(b[wire.InnerOffset:wire.InnerOffset], b[4:16], plain, nil)
	binary.LittleEndian.PutUint32(b[4:8], kp.RemoteIndex)
	dst.InnerLen = uint16(len(plain))
	dst.MsgLen = uint16(wire.InnerOffset + len(plain) + wire.TagSize)
}

// Open authenticates and decrypts the transport message in p.Message() in
// place, leaving the padded inner packet in p.Inner(). The caller parsed
// the header (wire.ParseTransportHeader) to find this keypair and passes
// the counter it read; Open does not check the replay window. On failure p
// is garbage.
func (kp *Keypair) Open(p *wire.Packet, counter uint64) error { return kp.OpenTo(p, p, counter) }

// OpenTo is Open with the inner packet written to dst instead of in place:
// the decrypt pool opens straight into the next stage's slot. src's header
// is overwritten (it serves as the nonce). dst and src are either the same
// packet or do not overlap; on failure dst is garbage.
func (kp *Keypair) OpenTo(dst, src *wire.Packet, counter uint64) error {
	n := int(src.MsgLen)
	if n < wire.MinTransportSize || n > wire.MaxMessageSize {
		return ErrMessageSize
	}
	b := &src.Buf
	// Reuse the header as the nonce, as in Seal; the receiver field is no
	// longer needed.
	binary.LittleEndian.PutUint32(b[4:8], 0)
	binary.LittleEndian.PutUint64(b[8:16], counter)
	plain, err := kp.recv.Open(dst.Buf[wire.InnerOffset:wire.InnerOffset], b[4:16], b[wire.InnerOffset:n], nil)
	if err != nil {
		return ErrDecrypt
	}
	dst.InnerLen = uint16(len(plain))
	dst.MsgLen = src.MsgLen
	return nil
}
