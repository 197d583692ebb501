package noise

import "time"

// Curve25519 operations per handshake message, as the handshake does
// them: what a budget of Curve25519 work charges a message before it is
// processed.
const (
	// DHPerInitiation is a received initiation and its response:
	// DH(S_r, E_i) to open the initiator's key, the responder's
	// ephemeral key, DH(E_r, E_i) and DH(E_r, S_i). (The static-static
	// DH is one more, at a peer's first handshake only.)
	DHPerInitiation = 4
	// DHPerResponse is a received response: DH(E_i, E_r) and
	// DH(S_i, E_r).
	DHPerResponse = 2
)

// MeasureDH returns how long one X25519 operation takes on this machine:
// the least of n timed operations (at least one), each with the code the
// handshake uses. The least, not the mean: an operation that lost its
// core to another task meanwhile took longer than the work itself, and on
// a shared machine many do. n operations take n times about 60 µs on
// current cores.
func MeasureDH(n int) time.Duration {
	priv, err := GeneratePrivateKey()
	if err != nil {
		panic(err) // crypto/rand never fails since Go 1.24
	}
	pub := priv.Public()
	best := time.Duration(1<<63 - 1)
	for range max(n, 1) {
		t0 := time.Now()
		ss, err := sharedSecret(&priv, &pub)
		d := time.Since(t0)
		if err != nil {
			panic(err) // unreachable: pub is a real public key
		}
		setZero(ss[:])
		best = min(best, d)
	}
	return best
}
