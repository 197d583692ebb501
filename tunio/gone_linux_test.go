package tunio

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"
)

// TestDeletedTUN: when the interface is
// deleted (ip link del, as wg-quick down does), reads and writes fail
// with ErrDeviceGone, which is not a clean close, so that the tunnel
// stops and says why instead of taking it for its own Close.
func TestDeletedTUN(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	name := fmt.Sprintf("pggone%d", rand.Uint32N(1e6))
	var dev Device
	var err error
	ns.do(func() { dev, err = CreateTUN(name, InnerMTU) })
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	bufs, sizes := make([][]byte, dev.BatchSize()), make([]int, dev.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, Offset+InnerMTU+Tailroom)
	}
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := dev.Read(bufs, sizes, Offset); err != nil {
				readErr <- err
				return
			}
		}
	}()
	ns.do(func() {
		// The forked ip inherits this thread's namespace.
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip link del: %v\n%s", err, out)
		}
	})
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrDeviceGone) || IsClosed(err) {
			t.Fatalf("Read after ip link del: %v, want ErrDeviceGone and not closed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after ip link del")
	}
	pkt := make([]byte, Offset+40)
	pkt[Offset] = 0x45
	if _, err := dev.Write([][]byte{pkt}, Offset); !errors.Is(err, ErrDeviceGone) {
		t.Fatalf("Write after ip link del: %v, want ErrDeviceGone", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("Close after ip link del: %v", err)
	}
	if _, err := dev.Read(bufs, sizes, Offset); !IsClosed(err) {
		t.Fatalf("Read after Close: %v, want closed", err)
	}
}
