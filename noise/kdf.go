package noise

import (
	"crypto/hmac"
	"hash"

	"golang.org/x/crypto/blake2s"
)

// Protocol strings. They bind every hash and key of the handshake to
// WireGuard v1; a single changed byte makes an incompatible protocol.
const (
	construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	identifier   = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	labelMAC1    = "mac1----"
	labelCookie  = "cookie--"
)

// hashSize is the output of BLAKE2s-256: chaining keys, hashes, derived keys.
const hashSize = blake2s.Size

var (
	// initialChainKey is C0 = HASH(construction).
	initialChainKey = blake2s.Sum256([]byte(construction))
	// initialHash is H0 = HASH(C0 || identifier).
	initialHash = mixHash(&initialChainKey, []byte(identifier))
)

// mixHash returns HASH(h || data).
func mixHash(h *[hashSize]byte, data []byte) [hashSize]byte {
	d, _ := blake2s.New256(nil)
	d.Write(h[:])
	d.Write(data)
	var out [hashSize]byte
	d.Sum(out[:0])
	return out
}

// labelledHash returns HASH(label || key): the MAC1 key and the cookie
// encryption key for a public key.
func labelledHash(label string, key *PublicKey) [hashSize]byte {
	d, _ := blake2s.New256(nil)
	d.Write([]byte(label))
	d.Write(key[:])
	var out [hashSize]byte
	d.Sum(out[:0])
	return out
}

func newBlake2s256() hash.Hash {
	h, _ := blake2s.New256(nil) // cannot fail without a key
	return h
}

// hmacSum sets sum = HMAC-BLAKE2s(key, in0 || in1), the construction
// wireguard-go and the whitepaper use (not BLAKE2s's own keyed mode).
func hmacSum(sum *[hashSize]byte, key []byte, in0, in1 []byte) {
	mac := hmac.New(newBlake2s256, key)
	mac.Write(in0)
	mac.Write(in1)
	mac.Sum(sum[:0])
}

// kdf1 is HKDF with one output: t0.
func kdf1(t0 *[hashSize]byte, key, input []byte) {
	var prk [hashSize]byte
	hmacSum(&prk, key, input, nil)
	hmacSum(t0, prk[:], []byte{1}, nil)
	setZero(prk[:])
}

// kdf2 is HKDF with two outputs.
func kdf2(t0, t1 *[hashSize]byte, key, input []byte) {
	var prk [hashSize]byte
	hmacSum(&prk, key, input, nil)
	hmacSum(t0, prk[:], []byte{1}, nil)
	hmacSum(t1, prk[:], t0[:], []byte{2})
	setZero(prk[:])
}

// kdf3 is HKDF with three outputs.
func kdf3(t0, t1, t2 *[hashSize]byte, key, input []byte) {
	var prk [hashSize]byte
	hmacSum(&prk, key, input, nil)
	hmacSum(t0, prk[:], []byte{1}, nil)
	hmacSum(t1, prk[:], t0[:], []byte{2})
	hmacSum(t2, prk[:], t1[:], []byte{3})
	setZero(prk[:])
}

// mac16 returns the keyed BLAKE2s-128 of msg: MAC1 (keyed with the MAC1
// key), MAC2 (keyed with the cookie) and the cookie itself (keyed with the
// responder's secret, over the source address).
func mac16(key []byte, msg []byte) [16]byte {
	var out [16]byte
	m, err := blake2s.New128(key)
	if err != nil {
		panic(err) // unreachable: keys are 16 or 32 bytes
	}
	m.Write(msg)
	m.Sum(out[:0])
	return out
}
