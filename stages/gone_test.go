package stages

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/supervisor"
	"pipeguard/tunio"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// deletableTUN is a memtun.TUN whose interface can be deleted from
// outside: from then on every read and write fails with
// tunio.ErrDeviceGone, as a real TUN does after ip link del.
type deletableTUN struct {
	*memtun.TUN
	gone atomic.Bool
}

func (d *deletableTUN) delete() {
	d.gone.Store(true)
	d.TUN.Close() // unblocks a waiting Read, as the kernel does
}

func (d *deletableTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.TUN.Read(bufs, sizes, offset)
	if d.gone.Load() {
		return 0, tunio.ErrDeviceGone
	}
	return n, err
}

func (d *deletableTUN) Write(bufs [][]byte, offset int) (int, error) {
	if d.gone.Load() {
		return 0, tunio.ErrDeviceGone
	}
	return d.TUN.Write(bufs, offset)
}

var _ tunio.Device = (*deletableTUN)(nil)

// TestDeletedDeviceStopsTunnel: after ip link del the
// stages took the device's error for their own close and returned nil,
// so the supervisor let them go and the tunnel ran on without them. Now
// the first stage to see the device gone stops the whole tunnel, at
// once, without restarts, and Serve says why.
func TestDeletedDeviceStopsTunnel(t *testing.T) {
	for _, engine := range []Engine{EnginePipeline, EngineSequential} {
		t.Run(string(engine), func(t *testing.T) {
			leakCheck(t)
			conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
			if err != nil {
				t.Fatal(err)
			}
			mt, err := memtun.New(memtun.Config{})
			if err != nil {
				t.Fatal(err)
			}
			dev := &deletableTUN{TUN: mt}
			tun, err := New(Config{PrivateKey: mustKey(t), Engine: engine, Workers: 2}, dev, conn, nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- tun.Serve(ctx) }()
			time.Sleep(50 * time.Millisecond) // let the stages reach their reads
			dev.delete()
			select {
			case err := <-errc:
				if !errors.Is(err, tunio.ErrDeviceGone) || !errors.Is(err, supervisor.ErrTerminateTree) {
					t.Fatalf("Serve after the device was deleted: %v; want ErrDeviceGone, terminating the tree", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Serve still running 5 s after the device was deleted; stats:\n%s", fmtStats(tun.Stats()))
			}
			for _, s := range tun.Stats() {
				if s.Restarts != 0 {
					t.Errorf("stage %s restarted %d times for a deleted device", s.Name, s.Restarts)
				}
			}
		})
	}
}
