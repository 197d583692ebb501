package bench

import (
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"pipeguard/stages"
	"pipeguard/wire"
)

var engines = []stages.Engine{stages.EngineSequential, stages.EnginePipeline}

// BenchmarkInbound pushes b.N sealed datagrams carrying 1280-byte inner
// packets through a whole tunnel (UDP in, TUN out). The sealing happens
// before the timer starts.
func BenchmarkInbound(b *testing.B) {
	for _, engine := range engines {
		b.Run("engine="+string(engine), func(b *testing.B) {
			r, err := NewRig(Options{Engine: engine})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			dgrams := r.SealInbound(b.N)
			runtime.GC() // the sealed datagrams' garbage is not the tunnel's
			b.SetBytes(wire.MaxInnerSize)
			b.ReportAllocs()
			b.ResetTimer()
			if err := r.RunInbound(dgrams); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
		})
	}
}

// BenchmarkOutbound pushes b.N 1280-byte inner packets through a whole
// tunnel (TUN in, UDP out).
func BenchmarkOutbound(b *testing.B) {
	for _, engine := range engines {
		b.Run("engine="+string(engine), func(b *testing.B) {
			r, err := NewRig(Options{Engine: engine})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.SetBytes(wire.MaxInnerSize)
			b.ReportAllocs()
			b.ResetTimer()
			if err := r.RunOutbound(b.N); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
		})
	}
}

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
