package stages

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/tunio/memtun"
)

// TestMain fails the package if any test leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStopLeavesNoGoroutine: a tunnel that stops, idle or in the middle
// of traffic with every stage blocked (its TUN device refusing to take
// packets, the network making senders wait, a test goroutine waiting to
// inject), returns nil from Serve promptly and leaves no goroutine behind.
// (newPair checks for leaks after every test; this one makes sure the
// hardest case is covered, for both engines.)
func TestStopLeavesNoGoroutine(t *testing.T) {
	for _, engine := range engines {
		for _, loaded := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/loaded=%v", engine, loaded), func(t *testing.T) {
				// B's TUN is never read: once its queue is full, B's writes
				// block, then the whole path back to A's TUN.
				a, b := newPair(t, pairOpts{dualStack: true, engine: engine, workers: 2, queue: 8, net: blocking, clock: fakeClock(),
					devA: memtun.Config{QueueLen: 16}, devB: memtun.Config{QueueLen: 16}})
				injected := make(chan error, 1)
				if loaded {
					if err := sendFlows(a, hostA, []host{hostB}, 0, 1); err != nil {
						t.Fatal(err)
					}
					b.recv(t, 5*time.Second)
					go func() { injected <- sendFlows(a, hostA, []host{hostB}, 1, 5000) }()
					// Wait until the path is full: A's TUN queue stays full.
					waitFor(t, 5*time.Second, func() bool { return a.dev.Queued() == 16 && len(b.dev.Outbound()) == 16 },
						func() string { return "the path did not fill\n" + stats(a, b)() })
				} else {
					injected <- nil
				}
				for _, e := range []*end{a, b} {
					start := time.Now()
					if err := e.stop(); err != nil {
						t.Fatalf("Serve: %v", err)
					}
					if d := time.Since(start); d > time.Second {
						t.Errorf("stopping took %v", d)
					}
				}
				select {
				case <-injected: // returns once A's device closed
				case <-time.After(5 * time.Second):
					t.Fatal("the injecting goroutine is still blocked after the tunnel stopped")
				}
			})
		}
	}
}
