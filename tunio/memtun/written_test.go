package memtun

import (
	"testing"
	"time"

	"pipeguard/tunio"
)

// TestWrittenWhileWriteWaits: Written answers while a Write waits for room
// in the outbound queue, so a test can watch a tunnel that is blocked on
// its TUN device.
func TestWrittenWhileWriteWaits(t *testing.T) {
	tun, _ := New(Config{QueueLen: 1})
	bufs, _ := newBufs(2)
	for i := range bufs {
		copy(bufs[i][tunio.Offset:], pkt(i, 40))
		bufs[i] = bufs[i][:tunio.Offset+40]
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := tun.Write(bufs, tunio.Offset) // the second packet waits
		wrote <- err
	}()
	got := make(chan uint64, 1)
	go func() {
		for tun.Written() == 0 {
			time.Sleep(time.Millisecond)
		}
		got <- tun.Written()
	}()
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("Written = %d while the second packet waits, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Written blocked while a Write waited for room")
	}
	tun.Close()
	if err := <-wrote; !tunio.IsClosed(err) {
		t.Errorf("blocked Write after Close: %v", err)
	}
}
