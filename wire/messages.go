package wire

import (
	"encoding/binary"
	"errors"
)

// MessageType is the first byte of every WireGuard message. The three bytes
// after it are reserved and must be zero.
type MessageType uint8

// The four message types of the WireGuard protocol.
const (
	TypeInitiation  MessageType = 1
	TypeResponse    MessageType = 2
	TypeCookieReply MessageType = 3
	TypeTransport   MessageType = 4
)

// Exact sizes of the messages on the wire, in bytes.
const (
	InitiationSize      = 148
	ResponseSize        = 92
	CookieReplySize     = 64
	TransportHeaderSize = 16
	TagSize             = 16 // Poly1305 tag appended to every AEAD ciphertext
	// MinTransportSize is a keepalive: a header and the tag of an empty
	// plaintext.
	MinTransportSize = TransportHeaderSize + TagSize
)

// Sizes of the fields inside messages.
const (
	KeySize             = 32 // Curve25519 public key, hash, chaining key
	TimestampSize       = 12 // TAI64N
	MACSize             = 16
	CookieSize          = 16
	CookieNonceSize     = 24 // XChaCha20-Poly1305 nonce
	encryptedStaticSize = KeySize + TagSize
	encryptedTimeSize   = TimestampSize + TagSize
	encryptedCookieSize = CookieSize + TagSize
	encryptedEmptySize  = TagSize
)

// Errors returned by the parsers. They are sentinels so that the hot path
// can count them without allocating.
var (
	ErrShort       = errors.New("wire: short message")
	ErrSize        = errors.New("wire: wrong message size")
	ErrType        = errors.New("wire: unexpected message type")
	ErrReserved    = errors.New("wire: reserved bytes not zero")
	ErrTooLarge    = errors.New("wire: message too large")
	ErrNotIP       = errors.New("wire: not an IPv4 or IPv6 packet")
	ErrIPTruncated = errors.New("wire: IP packet shorter than its header says")
)

// Initiation is the first handshake message (type 1, 148 bytes).
type Initiation struct {
	Sender    uint32
	Ephemeral [KeySize]byte
	Static    [encryptedStaticSize]byte
	Timestamp [encryptedTimeSize]byte
	MAC1      [MACSize]byte
	MAC2      [MACSize]byte
}

// Response is the second handshake message (type 2, 92 bytes).
type Response struct {
	Sender    uint32
	Receiver  uint32
	Ephemeral [KeySize]byte
	Empty     [encryptedEmptySize]byte
	MAC1      [MACSize]byte
	MAC2      [MACSize]byte
}

// CookieReply answers a handshake message when the responder is under load
// (type 3, 64 bytes).
type CookieReply struct {
	Receiver uint32
	Nonce    [CookieNonceSize]byte
	Cookie   [encryptedCookieSize]byte
}

// TransportHeader precedes every transport data ciphertext (type 4).
type TransportHeader struct {
	Receiver uint32
	Counter  uint64
}

// Offsets of the MACs: MAC1 covers everything before it, MAC2 everything
// before MAC2. They are the same distance from the end in both handshake
// messages.
const (
	InitiationMAC1Offset = InitiationSize - 2*MACSize
	InitiationMAC2Offset = InitiationSize - MACSize
	ResponseMAC1Offset   = ResponseSize - 2*MACSize
	ResponseMAC2Offset   = ResponseSize - MACSize
)

// PeekType returns the message type of b after checking that the reserved
// bytes are zero. It does not check the size.
func PeekType(b []byte) (MessageType, error) {
	if len(b) < 4 {
		return 0, ErrShort
	}
	if b[1]|b[2]|b[3] != 0 {
		return 0, ErrReserved
	}
	return MessageType(b[0]), nil
}

func putType(b []byte, t MessageType) {
	b[0], b[1], b[2], b[3] = byte(t), 0, 0, 0
}

func checkHeader(b []byte, t MessageType, size int) error {
	if len(b) < 4 {
		return ErrShort
	}
	got, err := PeekType(b)
	if err != nil {
		return err
	}
	if got != t {
		return ErrType
	}
	if len(b) != size {
		return ErrSize
	}
	return nil
}

// Marshal writes m into b, which must be InitiationSize bytes long.
func (m *Initiation) Marshal(b *[InitiationSize]byte) {
	putType(b[:], TypeInitiation)
	binary.LittleEndian.PutUint32(b[4:], m.Sender)
	copy(b[8:], m.Ephemeral[:])
	copy(b[40:], m.Static[:])
	copy(b[88:], m.Timestamp[:])
	copy(b[116:], m.MAC1[:])
	copy(b[132:], m.MAC2[:])
}

// Unmarshal parses b strictly: exact size, type 1, zero reserved bytes.
func (m *Initiation) Unmarshal(b []byte) error {
	if err := checkHeader(b, TypeInitiation, InitiationSize); err != nil {
		return err
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	copy(m.Ephemeral[:], b[8:40])
	copy(m.Static[:], b[40:88])
	copy(m.Timestamp[:], b[88:116])
	copy(m.MAC1[:], b[116:132])
	copy(m.MAC2[:], b[132:148])
	return nil
}

// Marshal writes m into b.
func (m *Response) Marshal(b *[ResponseSize]byte) {
	putType(b[:], TypeResponse)
	binary.LittleEndian.PutUint32(b[4:], m.Sender)
	binary.LittleEndian.PutUint32(b[8:], m.Receiver)
	copy(b[12:], m.Ephemeral[:])
	copy(b[44:], m.Empty[:])
	copy(b[60:], m.MAC1[:])
	copy(b[76:], m.MAC2[:])
}

// Unmarshal parses b strictly: exact size, type 2, zero reserved bytes.
func (m *Response) Unmarshal(b []byte) error {
	if err := checkHeader(b, TypeResponse, ResponseSize); err != nil {
		return err
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	m.Receiver = binary.LittleEndian.Uint32(b[8:])
	copy(m.Ephemeral[:], b[12:44])
	copy(m.Empty[:], b[44:60])
	copy(m.MAC1[:], b[60:76])
	copy(m.MAC2[:], b[76:92])
	return nil
}

// Marshal writes m into b.
func (m *CookieReply) Marshal(b *[CookieReplySize]byte) {
	putType(b[:], TypeCookieReply)
	binary.LittleEndian.PutUint32(b[4:], m.Receiver)
	copy(b[8:], m.Nonce[:])
	copy(b[32:], m.Cookie[:])
}

// Unmarshal parses b strictly: exact size, type 3, zero reserved bytes.
func (m *CookieReply) Unmarshal(b []byte) error {
	if err := checkHeader(b, TypeCookieReply, CookieReplySize); err != nil {
		return err
	}
	m.Receiver = binary.LittleEndian.Uint32(b[4:])
	copy(m.Nonce[:], b[8:32])
	copy(m.Cookie[:], b[32:64])
	return nil
}

// Marshal writes the 16-byte transport header into b.
func (h TransportHeader) Marshal(b []byte) {
	_ = b[TransportHeaderSize-1]
	putType(b, TypeTransport)
	binary.LittleEndian.PutUint32(b[4:], h.Receiver)
	binary.LittleEndian.PutUint64(b[8:], h.Counter)
}

// ParseTransportHeader parses the header of a transport message b (header,
// ciphertext and tag). b must be at least MinTransportSize long and at most
// MaxMessageSize; the ciphertext length itself is checked by the AEAD.
func ParseTransportHeader(b []byte) (TransportHeader, error) {
	if len(b) < 4 {
		return TransportHeader{}, ErrShort
	}
	t, err := PeekType(b)
	if err != nil {
		return TransportHeader{}, err
	}
	if t != TypeTransport {
		return TransportHeader{}, ErrType
	}
	if len(b) < MinTransportSize {
		return TransportHeader{}, ErrShort
	}
	if len(b) > MaxMessageSize {
		return TransportHeader{}, ErrTooLarge
	}
	return TransportHeader{
		Receiver: binary.LittleEndian.Uint32(b[4:]),
		Counter:  binary.LittleEndian.Uint64(b[8:]),
	}, nil
}
