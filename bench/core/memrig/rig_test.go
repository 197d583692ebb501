package memrig

import (
	"runtime"
	"testing"

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
			r, err := New(Options{Engine: engine})
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
			r, err := New(Options{Engine: engine})
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
