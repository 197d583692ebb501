package stages

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pipeguard/supervisor"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

// faultBatch is the batch size of the fault tests' TUN devices and
// sockets, so that what an edge stage holds when it panics (one batch) is
// small and known.
const faultBatch = 8

// faultCase is a kind of stage to make panic, as one engine names it.
type faultCase struct {
	kind    stageKind
	stage   string // the stage's name in Stats
	inbound bool   // it runs on the receiving tunnel (B), else on the sender (A)
	inHand  int    // the most packets it holds when it panics
}

var faultCases = map[Engine][]faultCase{
	EnginePipeline: {
		{stageUDPRecv, "udprecv", true, faultBatch},
		{stageDispatchIn, "dispatch-in", true, 1},
		{stageDecrypt, "decrypt", true, 1},
		{stageRouteIn, "route-in", true, 1},
		{stageTUNWrite, "tunwrite", true, faultBatch},
		{stageTUNRead, "tunread", false, faultBatch},
		{stageRouteOut, "route-out", false, 1},
		{stageEncrypt, "encrypt", false, 1},
		{stageUDPSend, "udpsend", false, faultBatch},
	},
	// The sequential engine's two loops read a batch, then run every step
	// inline: a panic anywhere loses that batch.
	EngineSequential: {
		{stageUDPRecv, "inbound", true, faultBatch},
		{stageTUNRead, "outbound", false, faultBatch},
	},
}

// faultPair is a pair A → B with fault injectors, small batches and
// queues (so that a panic finds plenty of traffic still to come), on a
// network that never drops, with the session up: A has sent packet 0.
func faultPair(t *testing.T, engine Engine) (a, b *end, atB *flowChecker) {
	t.Helper()
	dev := memtun.Config{BatchSize: faultBatch, QueueLen: 64}
	a, b = newPair(t, pairOpts{dualStack: true, engine: engine, workers: 2, queue: 16, devA: dev, devB: dev, faults: true, noInline: true, clock: fakeClock(),
		net: memudp.Config{Block: true, BatchSize: faultBatch, QueueLen: 64}})
	atB = checkFlows(b, hostB, []host{hostA}, true)
	if err := sendFlows(a, hostA, []host{hostB}, 0, 1); err != nil {
		t.Fatal(err)
	}
	atB.wait(t, 0, 1, 5*time.Second, stats(a, b))
	return a, b, atB
}

// TestStagePanicRestarts: under load, each kind of stage panics once. Its
// supervisor restarts it, traffic resumes, what is lost is at most what
// the stage held (one packet for a worker or a route stage, one batch for
// an edge), it is one run of consecutive packets, it is counted as
// dropped by panic, the rest arrives in order, and at rest nothing is
// counted in flight.
func TestStagePanicRestarts(t *testing.T) {
	const n = 1500
	for _, engine := range engines {
		for _, fc := range faultCases[engine] {
			t.Run(fmt.Sprintf("%s/%s", engine, fc.stage), func(t *testing.T) {
				a, b, atB := faultPair(t, engine)
				st := stats(a, b)
				victim := a
				if fc.inbound {
					victim = b
				}
				// The panic is armed with traffic still to come: after
				// 200 of the first 400 packets arrived, before the rest
				// is sent (armed mid-stream, a slow test goroutine could
				// find the stream already through the victim).
				if err := sendFlows(a, hostA, []host{hostB}, 1, 399); err != nil {
					t.Fatal(err)
				}
				atB.wait(t, 0, 200, 5*time.Second, st)
				// A few packets after it is armed, so that a stage that
				// takes runs of packets panics in the middle of one.
				victim.tun.faults.skips[fc.kind].Store(3)
				victim.tun.faults.panics[fc.kind].Store(1)
				stop := make(chan struct{})
				defer close(stop)
				errc := make(chan error, 1)
				go func() { errc <- streamFlows(a, hostA, []host{hostB}, 400, n-400, stop) }()
				atB.wait(t, 0, n, 5*time.Second, st)
				if err := <-errc; err != nil {
					t.Fatal(err)
				}

				got, missing, err := atB.result(0)
				if err != nil {
					t.Fatal(err)
				}
				lost := len(missing)
				vs := victim.tun.Stats()
				s := stageStats(t, vs, fc.stage)
				if s.Restarts != 1 {
					t.Errorf("%s restarted %d times, want 1\nstats:\n%s", fc.stage, s.Restarts, st())
				}
				if lost < 1 || lost > fc.inHand {
					t.Errorf("lost %d packets (%v), want 1..%d: what the stage held\nstats:\n%s", lost, head(missing), fc.inHand, st())
				}
				if len(missing) > 0 && missing[len(missing)-1]-missing[0] != uint32(lost-1) {
					t.Errorf("lost packets %v are not one run: more than the packets in hand\nstats:\n%s", head(missing), st())
				}
				if got+lost != n {
					t.Errorf("received %d and lost %d of %d", got, lost, n)
				}
				if p := dropsOf(vs, DropPanic); p != uint64(lost) {
					t.Errorf("drop[panic] = %d, want %d: %s lost the packets in hand when it panicked without counting them (docs/ARCHITECTURE.md: \"that loss is counted\")\nstats:\n%s",
						p, lost, fc.stage, st())
				}
				for _, e := range []*end{a, b} {
					ss := e.tun.Stats()
					if other := totalDrops(ss) - dropsOf(ss, DropPanic); other != 0 {
						t.Errorf("%d drops other than by panic\nstats:\n%s", other, st())
					}
				}
				// Every packet, lost or not, has left the pipeline's count
				// of packets in flight, once: otherwise the inline path
				// would never run again, or run while packets are in
				// flight and overtake them.
				if engine == EnginePipeline {
					for _, e := range []*end{a, b} {
						waitFor(t, 5*time.Second, func() bool { return e.tun.inline.in.n.Load() == 0 && e.tun.inline.out.n.Load() == 0 },
							func() string {
								return fmt.Sprintf("%s: %d inbound, %d outbound packets counted in flight at rest", e.udp, e.tun.inline.in.n.Load(), e.tun.inline.out.n.Load())
							})
					}
				}
			})
		}
	}
}

// TestStageKeepsFailingEscalates: a stage that panics on every packet is
// restarted until its failure count passes the threshold; then the
// tunnel gives up: Serve returns the supervisor's escalation error naming
// the stage, and every goroutine of the tunnel is gone.
func TestStageKeepsFailingEscalates(t *testing.T) {
	for _, engine := range engines {
		for _, fc := range faultCases[engine] {
			t.Run(fmt.Sprintf("%s/%s", engine, fc.stage), func(t *testing.T) {
				a, b, _ := faultPair(t, engine)
				victim := a
				if fc.inbound {
					victim = b
				}
				victim.tun.faults.panics[fc.kind].Store(1 << 40)
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					for first := uint32(1); ; first += 64 {
						if err := streamFlows(a, hostA, []host{hostB}, first, 64, stop); err != nil {
							return
						}
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
				defer func() { close(stop); <-done }()

				var err error
				select {
				case err = <-victim.errc:
					close(victim.errc)
				case <-time.After(10 * time.Second):
					t.Fatalf("the tunnel did not give up on %s\nstats:\n%s", fc.stage, fmtStats(victim.tun.Stats()))
				}
				var esc *supervisor.EscalationError
				if !errors.As(err, &esc) || !errors.Is(err, supervisor.ErrTooManyFailures) {
					t.Fatalf("Serve returned %v, want a *supervisor.EscalationError", err)
				}
				if !strings.HasPrefix(esc.Child, fc.stage) {
					t.Errorf("escalation names child %q, want stage %s", esc.Child, fc.stage)
				}
				var pe *supervisor.PanicError
				if !errors.As(esc.Err, &pe) || pe.Value != (errInjected{fc.kind}) {
					t.Errorf("last error %v, want the injected panic", esc.Err)
				}
				if s := stageStats(t, victim.tun.Stats(), fc.stage); s.Restarts < stageFailureThreshold {
					t.Errorf("%s restarted %d times before giving up, want at least %d", fc.stage, s.Restarts, stageFailureThreshold)
				}
				// Stopped for good: its TUN device is closed.
				if err := victim.dev.Inject(make([]byte, 20)); err == nil {
					t.Error("the tunnel's TUN device still accepts packets after Serve returned")
				}
			})
		}
	}
}

// head is the start of a long list, for failure messages.
func head(s []uint32) []uint32 { return s[:min(len(s), 20)] }
