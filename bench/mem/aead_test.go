package mem

import (
	"sync"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"pipeguard/wire"
)

// BenchmarkAEADLimit opens 1280-byte ChaCha20-Poly1305 messages on all
// cores in parallel: the ceiling for any engine on this machine.
func BenchmarkAEADLimit(b *testing.B) {
	var key [chacha20poly1305.KeySize]byte
	aead, _ := chacha20poly1305.New(key[:])
	var nonce [chacha20poly1305.NonceSize]byte
	sealed := aead.Seal(nil, nonce[:], make([]byte, wire.MaxInnerSize), nil)
	b.SetBytes(wire.MaxInnerSize)
	b.ReportAllocs()
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		buf := append([]byte(nil), sealed...)
		n := nonce
		mu.Unlock()
		for pb.Next() {
			copy(buf, sealed)
			if _, err := aead.Open(buf[:0], n[:], buf, nil); err != nil {
				panic(err)
			}
		}
	})
}
