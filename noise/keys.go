package noise

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the size of every key: Curve25519 private and public keys and
// the optional pre-shared key.
const KeySize = 32

// keyBase64Len is the length of a key in the base64 form `wg` prints: 32
// bytes are 43 characters and one '=' of padding.
const keyBase64Len = 44

// Key errors.
var (
	// ErrInvalidKey is returned for a key string that is not exactly the
	// standard, padded base64 of 32 bytes, and for a zero private key.
	ErrInvalidKey = errors.New("noise: invalid key")
	// ErrLowOrderPoint is returned when a Diffie-Hellman result is all zero:
	// the peer's public key is a low-order point, which would make the
	// "shared" secret known to anyone.
	ErrLowOrderPoint = errors.New("noise: public key is a low-order point")
)

// PrivateKey is a Curve25519 private key. The zero value is "no key".
// Keys are plain values: copy them freely; compare them with Equal.
type PrivateKey [KeySize]byte

// PublicKey is a Curve25519 public key, a peer's long-term identity.
type PublicKey [KeySize]byte

// PresharedKey is the optional symmetric key mixed into a handshake for
// post-quantum resistance. The zero value means "no pre-shared key"; the
// protocol then mixes in 32 zero bytes, exactly like every other
// implementation.
type PresharedKey [KeySize]byte

// GeneratePrivateKey returns a fresh private key from crypto/rand, clamped
// as Curve25519 requires (the same bits `wg genkey` clears and sets). The
// error is always nil since Go 1.24 (crypto/rand does not fail); it is kept
// so that callers do not depend on that.
func GeneratePrivateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return PrivateKey{}, err
	}
	k.clamp()
	return k, nil
}

// clamp clears the cofactor bits and sets the high bit, per RFC 7748.
func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Clamped returns k clamped as RFC 7748 says (bits 0 to 2 and bit 255
// cleared, bit 254 set), or the zero key for the zero key ("no key").
// The kernel and wireguard-go clamp a private key when it is set, and
// `wg show` then prints the clamped key; X25519 clamps on use, so both
// forms have the same public key.
func (k PrivateKey) Clamped() PrivateKey {
	if k.IsZero() {
		return k
	}
	k.clamp()
	return k
}

// Public returns the public key of k.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	// X25519 with the base point clamps k itself and cannot fail: the
	// base point has prime order.
	out, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		panic(err) // unreachable
	}
	copy(p[:], out)
	return p
}

// sharedSecret computes X25519(k, pub) and rejects an all-zero result.
func sharedSecret(k *PrivateKey, pub *PublicKey) ([KeySize]byte, error) {
	var ss [KeySize]byte
	out, err := curve25519.X25519(k[:], pub[:])
	if err != nil {
		// The only failure for 32-byte inputs is the all-zero output.
		return ss, ErrLowOrderPoint
	}
	copy(ss[:], out)
	return ss, nil
}

// lowOrder are the public keys whose Diffie-Hellman result is all zero
// for every clamped private key, read as X25519 reads a key (its top bit
// ignored): the u-coordinates of the points of small order on
// Curve25519 and its twist, 0, 1, p-1 and the two points of order 8,
// and the only other encodings below 2^255 of any of them, p (0) and
// p+1 (1). A clamped scalar is a multiple of the cofactor, so it sends
// exactly these to zero. (The list is libsodium's; the tests check each
// against X25519, and random keys against it.)
var lowOrder = [...]PublicKey{
	{},
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// CheckPublicKey returns ErrLowOrderPoint for a public key no handshake
// could ever succeed with: one whose Diffie-Hellman result is all zero.
// A key that passes works with every private key. It compares with the
// seven such keys and does no Curve25519 work, so that checking the
// peers of a large configuration costs nothing next to reading it.
func CheckPublicKey(pk PublicKey) error {
	pk[31] &= 0x7f
	for i := range lowOrder {
		if pk == lowOrder[i] {
			return ErrLowOrderPoint
		}
	}
	return nil
}

// String returns k in the base64 form `wg` uses. It reveals the secret:
// do not log it.
func (k PrivateKey) String() string { return encodeKey(k) }

// String returns p in the base64 form `wg` uses.
func (p PublicKey) String() string { return encodeKey(p) }

// MarshalText returns p in the base64 form `wg` uses, so that JSON (and
// so slog's JSON logs) writes a public key as `wg` prints it rather than
// as an array of 32 numbers. Private and pre-shared keys have no such
// method on purpose.
func (p PublicKey) MarshalText() ([]byte, error) { return []byte(encodeKey(p)), nil }

// String returns k in the base64 form `wg` uses. It reveals the secret:
// do not log it.
func (k PresharedKey) String() string { return encodeKey(k) }

// IsZero reports whether k is all zero, in constant time.
func (k PrivateKey) IsZero() bool { return isZero(k[:]) }

// IsZero reports whether p is all zero.
func (p PublicKey) IsZero() bool { return isZero(p[:]) }

// IsZero reports whether k is all zero (no pre-shared key), in constant
// time.
func (k PresharedKey) IsZero() bool { return isZero(k[:]) }

// Equal reports whether k and o are the same key, in constant time.
func (k PrivateKey) Equal(o PrivateKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// Equal reports whether p and o are the same key, in constant time: the
// responder compares a decrypted static key with configured ones.
func (p PublicKey) Equal(o PublicKey) bool { return subtle.ConstantTimeCompare(p[:], o[:]) == 1 }

// Equal reports whether k and o are the same key, in constant time.
func (k PresharedKey) Equal(o PresharedKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// ParsePrivateKey parses the base64 form of a private key. Like `wg`, it
// does not require the key to be clamped (X25519 clamps it on use); the
// tunnel clamps it when it is set (see Clamped).
func ParsePrivateKey(s string) (PrivateKey, error) {
	k, err := decodeKey(s)
	return PrivateKey(k), err
}

// ParsePublicKey parses the base64 form of a public key.
func ParsePublicKey(s string) (PublicKey, error) {
	k, err := decodeKey(s)
	return PublicKey(k), err
}

// ParsePresharedKey parses the base64 form of a pre-shared key.
func ParsePresharedKey(s string) (PresharedKey, error) {
	k, err := decodeKey(s)
	return PresharedKey(k), err
}

// strictBase64 rejects non-zero trailing bits, as `wg`'s decoder does, so
// that each key has exactly one text form.
var strictBase64 = base64.StdEncoding.Strict()

func encodeKey[K ~[KeySize]byte](k K) string {
	return base64.StdEncoding.EncodeToString(k[:])
}

func decodeKey(s string) ([KeySize]byte, error) {
	var k [KeySize]byte
	// The length check also rules out the line breaks the base64 decoder
	// would otherwise skip.
	if len(s) != keyBase64Len || s[keyBase64Len-1] != '=' {
		return k, ErrInvalidKey
	}
	var buf [keyBase64Len]byte // 3/4 of 44 is 33: room for a wrong length
	n, err := strictBase64.Decode(buf[:], []byte(s))
	if err != nil || n != KeySize {
		return k, ErrInvalidKey
	}
	copy(k[:], buf[:KeySize])
	return k, nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}

// setZero erases a secret once it is no longer needed. Go cannot promise
// that no other copy exists (stacks move, values are copied), so this
// narrows the window in which a memory dump reveals the secret; it does
// not close it.
func setZero(b []byte) { clear(b) }
