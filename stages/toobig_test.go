package stages

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"pipeguard/wire"
)

// lockedBuffer is a log destination safe for the stages' goroutines.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTooBigFromPeer: transport messages whose inner packet is above 1280
// bytes (a peer with MTU 1420 sends them) are dropped and counted under
// DropTooBig at udprecv, and the peer is logged once, with the fix.
func TestTooBigFromPeer(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			var logs lockedBuffer
			e, p := withRawPeer(t, tunnelSpec{engine: engine, workers: 2, log: slog.New(slog.NewTextHandler(&logs, nil))})
			p.initiate()
			const n = 3
			for i := range n {
				p.send(p.forged(uint64(i+1), 1400))
			}
			// A packet of the largest size that fits still passes.
			p.send(p.seal(ipv4(hostB.v4, hostA.v4, wire.MaxInnerSize, 9)))
			if got := e.recv(t, 5*time.Second); len(got) != wire.MaxInnerSize {
				t.Fatalf("a 1280-byte packet arrived as %d bytes", len(got))
			}
			waitFor(t, 5*time.Second, func() bool { return dropsOf(e.tun.Stats(), DropTooBig) == n },
				func() string { return fmtStats(e.tun.Stats()) })
			st := e.tun.Stats()
			if totalDrops(st) != n {
				t.Errorf("%d drops in all, want %d\n%s", totalDrops(st), n, fmtStats(st))
			}
			if engine == EnginePipeline {
				if got := stageStats(t, st, "udprecv").Drops[DropTooBig]; got != n {
					t.Errorf("udprecv too_big = %d, want %d\n%s", got, n, fmtStats(st))
				}
			}
			out := logs.String()
			if c := strings.Count(out, "set MTU = 1280 on that peer"); c != 1 {
				t.Errorf("%d log lines with the fix, want 1:\n%s", c, out)
			}
			if !strings.Contains(out, "peer="+p.key.Public().String()[:8]) {
				t.Errorf("the log line does not name the peer:\n%s", out)
			}
		})
	}
}
