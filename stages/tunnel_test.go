package stages

import (
	"bytes"
	"testing"
	"time"
)

var engines = []Engine{EngineSequential, EnginePipeline}

func TestPairExchangesBothWays(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			a, b := newPair(t, pairOpts{engine: engine, workers: 2})
			for i := range uint32(20) {
				p := ipv4(a.addr, b.addr, 100+int(i)*50, i)
				if err := a.dev.Inject(p); err != nil {
					t.Fatal(err)
				}
				if got := b.recv(t, 5*time.Second); !bytes.Equal(got, p) {
					t.Fatalf("A→B packet %d: got %d bytes, want %d", i, len(got), len(p))
				}
				q := ipv4(b.addr, a.addr, 1280-int(i), i)
				if err := b.dev.Inject(q); err != nil {
					t.Fatal(err)
				}
				if got := a.recv(t, 5*time.Second); !bytes.Equal(got, q) {
					t.Fatalf("B→A packet %d differs", i)
				}
			}
		})
	}
}
