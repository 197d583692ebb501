package mem

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"pipeguard/bench/core"
	"pipeguard/bench/core/memrig"
	"pipeguard/wire"
)

// aeadCheckEvery is how many opens a worker does between looks at the stop
// flag: about 10 µs of work at 1280 bytes, nothing next to a measurement.
const aeadCheckEvery = 16

// measureAEAD measures the ChaCha20-Poly1305 limit: a.Procs goroutines on
// GOMAXPROCS a.Procs, each opening a message of a.PacketSize inner bytes
// (padded as WireGuard pads) over and over. No tunnel can decrypt faster
// on those cores. Throughput counts inner bytes, as the tunnel figures do.
func measureAEAD(ctx context.Context, a AEADLimit, pl memrig.Plan) (memrig.Sample, error) {
	prev := runtime.GOMAXPROCS(a.Procs)
	defer runtime.GOMAXPROCS(prev)
	var key [chacha20poly1305.KeySize]byte
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return memrig.Sample{}, err
	}
	var nonce [chacha20poly1305.NonceSize]byte
	sealed := aead.Seal(nil, nonce[:], make([]byte, wire.PaddedLen(a.PacketSize)), nil)

	var (
		stop   atomic.Bool
		opened atomic.Uint64
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	quota := -1 // per goroutine; -1: until stopped
	if pl.Packets > 0 {
		quota = (pl.Packets + a.Procs - 1) / a.Procs
	}
	bufs := make([][]byte, a.Procs)
	for i := range bufs {
		bufs[i] = make([]byte, len(sealed))
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, t0 := core.ProcessCPU(), time.Now()
	for i := range a.Procs {
		wg.Go(func() {
			buf, n := bufs[i], 0
			for quota < 0 || n < quota {
				if n%aeadCheckEvery == 0 && stop.Load() {
					break
				}
				copy(buf, sealed)
				if _, err := aead.Open(buf[:0], nonce[:], buf, nil); err != nil {
					failed.Store(true)
					break
				}
				n++
			}
			opened.Add(uint64(n))
		})
	}
	if quota < 0 {
		select {
		case <-time.After(pl.Duration):
		case <-ctx.Done():
		}
		stop.Store(true)
	}
	wg.Wait()
	wall, cpu := time.Since(t0), core.ProcessCPU()-cpu0
	runtime.ReadMemStats(&ms1)
	if failed.Load() {
		return memrig.Sample{}, errAEAD
	}
	if err := ctx.Err(); err != nil {
		return memrig.Sample{}, err
	}
	return memrig.Sample{Packets: opened.Load(), Seconds: wall.Seconds(), CPUSeconds: cpu.Seconds(), Mallocs: ms1.Mallocs - ms0.Mallocs}, nil
}

// errAEAD means ChaCha20-Poly1305 failed to open what it sealed: a broken
// build, never a measurement.
var errAEAD = errors.New("bench: AEAD limit: open failed")
