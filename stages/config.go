package stages

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"pipeguard/noise"
)

// Engine names the dataplane scheduling.
type Engine string

// The two engines share every per-packet step function; they differ only in
// how the steps are scheduled.
const (
	EnginePipeline   Engine = "pipeline"   // one supervised goroutine per stage, worker pools for crypto
	EngineSequential Engine = "sequential" // one goroutine per direction calling the steps inline
)

// Queue capacities and batch sizes, each with its reason.
//
// Where packets may wait (docs/ARCHITECTURE.md, "The queues"): in each
// direction, exactly one managed queue (package fq) right after the edge
// stage that reads from the kernel, tunread or udprecv; everywhere after
// it, about one batch.
//
// What a stage does when the queue after it is full:
//   - the managed queue: its reader waits (for a whole batch of slots,
//     which a segmentation-offloaded TUN read needs), and the kernel's
//     queue in front of it takes the overflow. With queue management on,
//     a controller keeps it far from full for traffic that answers drops
//     or marks; without, it fills as any FIFO does.
//   - every data queue between the stages after it (encrypt workers,
//     udpsend; decrypt workers, route-in, tunwrite), each
//     Config.QueueCapacity packets: the producer waits, and backpressure
//     travels back to the managed queue.
//   - the handshake queue: udprecv drops the message and counts it
//     (DropQueueFull), so a handshake flood never stalls data.
//   - a peer's staged queue (packets waiting for a handshake): routing
//     drops the packet and counts it (DropStagedOverflow).
const (
	// DefaultQueueCapacity is the capacity of every data queue between
	// stages without queue management, and of the managed queue then:
	// about 1.4 MB of slots per queue, enough to ride out a scheduling
	// hiccup of a millisecond at several Gbit/s. (Measured: 64 to 256
	// made the pipeline slower here, the stages then park and wake far
	// more often.)
	DefaultQueueCapacity = 1000

	// ManagedQueueCapacity is the capacity of the data queues after the
	// managed queue when queue management is on: eight pool runs per
	// worker queue. Whatever waits there waits in a FIFO no controller
	// sees, behind every flow, so it is kept small; but with two pool
	// runs (64) the workers parked and woke so often that, with one end
	// under load (cmd/bench --mode loadgen --quick, pipeline), the tunnel
	// stayed on one core and moved 5.3 Gbit/s each way, against 5.9 and
	// 6.9 with four runs and 7.6 and 8.7 with eight (1.5 cores); with
	// both ends on the machine (--mode netns) 64 and 256 measured the
	// same throughput and the same loaded latency.
	ManagedQueueCapacity = 8 * maxPoolRun

	// ManagedQueueSlots is the managed queue's size with queue
	// management on: a bound on memory (about 1.4 MB of slots per
	// direction), not a target; the controller keeps the delay near
	// QueueTarget, a few hundred packets at Gbit/s. It holds a burst of
	// 1000 packets, so that a sparse packet behind one still leaves
	// first, and 8 full TUN reads before the reader waits.
	//
	// Smaller is faster under overload: a full queue is the working set
	// of the stage that takes from it, each packet written long before it
	// is opened or sealed, by then out of the cache. One end under load
	// (cmd/bench --mode loadgen --quick --repeat 3 --queue-management
	// both, three runs each), the sequential engine moved 0.83 (inbound)
	// and 0.83 (outbound) of its Gbit/s with queue management off at
	// 2048 slots, 0.91 and 0.93 at 1024, 0.98 and 1.00 at 512; the
	// pipeline 0.89 and 0.92, 0.87 and 0.92, 0.91 and 1.05.
	ManagedQueueSlots = 1024

	// managedFlows is how many flow queues each managed queue hashes
	// inner flows into (fq_codel's default): collisions between a few
	// hundred active flows are rare. Inbound, the inner flow is read from
	// the message's first keystream block before it is opened (innerFlow).
	managedFlows = 1024

	// DefaultQueueTarget and DefaultQueueInterval are the CoDel settings
	// (Config.QueueTarget, QueueInterval). fq_codel's 5 ms and 100 ms
	// assume internet round trips; a tunnel's own queue stands only when
	// its CPU is the bottleneck, which happens on fast paths, where round
	// trips are under a millisecond to a few: the target is a few batches'
	// worth of work, the interval a LAN round trip under load with room
	// for a metro one (docs/ARCHITECTURE.md has the measurements).
	//
	// Both ends on two cores, four CUBIC streams (cmd/bench --mode netns
	// --queue-management on --streams 4 --repeat 2, both engines): at
	// 0.5 ms / 10 ms a ping waited 3.2-4.0 ms (p50) one way, as at 1 ms;
	// at 2 ms / 20 ms 4.4-5.9 ms, and at 5 ms / 100 ms 10-12 ms, while
	// the streams moved 1.8-2.1, 1.8-2.3, 1.9-2.5 and 2.4-2.6 Gbit/s.
	DefaultQueueTarget   = 500 * time.Microsecond
	DefaultQueueInterval = 10 * time.Millisecond

	// HandshakeQueueCapacity bounds handshake messages waiting for the
	// handshake workers. It is small on purpose: a full queue drops (the
	// network edge may drop) and, from a quarter full, makes the workers
	// answer with cookies instead of doing Curve25519 work.
	HandshakeQueueCapacity = 256

	// StagedPerPeer is how many outbound packets wait per peer for a
	// handshake to finish; wireguard-go keeps 1024, we keep fewer because
	// packets are copied by value and a handshake takes one round trip.
	StagedPerPeer = 128

	// maxBatch caps the packets one edge stage moves per system call.
	maxBatch = 128

	// maxPoolRun is how many consecutive packets a worker pool's
	// dispatcher hands to one worker before it turns to the next (see
	// roundRobin): the number a queue publishes at once (spsc's
	// maxFlushEvery), so that a run costs its worker one wake-up. Larger
	// batches, as at full load, still spread over every worker.
	maxPoolRun = 32
)

// PeerConfig is one peer as the tunnel needs it.
type PeerConfig struct {
	PublicKey           noise.PublicKey
	PresharedKey        noise.PresharedKey // zero when not set
	Endpoint            netip.AddrPort     // zero when not known yet (the peer must reach us first)
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration // 0 disables it
}

// Config is a tunnel's settings. The zero value of each optional field
// takes the default named in its comment.
type Config struct {
	PrivateKey noise.PrivateKey // zero: none yet (handshakes wait for one)
	FwMark     uint32           // firewall mark (SO_MARK) on the UDP packets; 0: none (see Tunnel.SetFwMark)
	Peers      []PeerConfig
	Engine     Engine // default EnginePipeline
	Workers    int    // decrypt and encrypt workers each; default GOMAXPROCS
	// QueueCapacity is the capacity of each data queue between stages;
	// default ManagedQueueCapacity, or DefaultQueueCapacity without queue
	// management (then also the managed queue's).
	QueueCapacity int

	// NoQueueManagement turns queue management off: the managed queues
	// become FIFOs of QueueCapacity packets that only fill, with no flow
	// fairness, drops or marks, the other queues QueueCapacity deep too.
	// The tunnel then moves as many bytes as its CPU allows, and a packet
	// behind a bulk transfer waits for all of it.
	NoQueueManagement bool
	// QueueTarget and QueueInterval set the managed queues' controller;
	// defaults DefaultQueueTarget, DefaultQueueInterval.
	QueueTarget, QueueInterval time.Duration
	// HandshakeWorkers is how many workers answer handshake messages;
	// default GOMAXPROCS, at most MaxHandshakeWorkers.
	HandshakeWorkers int
	// HandshakeBudget bounds their Curve25519 work; zero: calibrated on
	// this machine when the tunnel is made (CalibrateHandshakeBudget).
	HandshakeBudget HandshakeBudget
}

// MaxHandshakeWorkers bounds the default handshake pool: the budget, not
// the workers, bounds the Curve25519 work, so more workers than this
// only add goroutines.
const MaxHandshakeWorkers = 4

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("stages: invalid config")

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Engine == "" {
		out.Engine = EnginePipeline
	}
	if out.Engine != EnginePipeline && out.Engine != EngineSequential {
		return out, fmt.Errorf("%w: engine %q is not %q or %q", ErrConfig, out.Engine, EnginePipeline, EngineSequential)
	}
	if out.Workers == 0 {
		out.Workers = runtime.GOMAXPROCS(0)
	}
	if out.Workers < 1 || out.Workers > 256 {
		return out, fmt.Errorf("%w: workers %d not in 1..256", ErrConfig, out.Workers)
	}
	if out.QueueCapacity == 0 {
		out.QueueCapacity = ManagedQueueCapacity
		if out.NoQueueManagement {
			out.QueueCapacity = DefaultQueueCapacity
		}
	}
	if out.QueueCapacity < 1 || out.QueueCapacity > 1<<20 {
		return out, fmt.Errorf("%w: queue capacity %d not in 1..%d", ErrConfig, out.QueueCapacity, 1<<20)
	}
	if out.QueueTarget == 0 {
		out.QueueTarget = DefaultQueueTarget
	}
	if out.QueueInterval == 0 {
		out.QueueInterval = DefaultQueueInterval
	}
	if out.QueueTarget < 0 || out.QueueInterval < out.QueueTarget || out.QueueInterval > time.Minute {
		return out, fmt.Errorf("%w: queue target %v and interval %v: want 0 < target <= interval <= 1m", ErrConfig, out.QueueTarget, out.QueueInterval)
	}
	if out.HandshakeWorkers == 0 {
		out.HandshakeWorkers = min(runtime.GOMAXPROCS(0), MaxHandshakeWorkers)
	}
	if out.HandshakeWorkers < 1 || out.HandshakeWorkers > 256 {
		return out, fmt.Errorf("%w: handshake workers %d not in 1..256", ErrConfig, out.HandshakeWorkers)
	}
	if out.HandshakeBudget != (HandshakeBudget{}) {
		if err := out.HandshakeBudget.check(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Check reports what New would refuse in c, building nothing: the
// settings, a bad private key, and a peer configured twice. The client
// runs it before it creates anything, at start and for --check, so that
// a refused start leaves nothing behind. A peer public key that is a
// low-order point is no refusal here, as it is none in the kernel (see
// AddPeer); the config file's parser refuses it, where a person reads
// the error.
func (c *Config) Check() error {
	cc, err := c.withDefaults()
	if err != nil {
		return err
	}
	if _, err := newIdentity(cc.PrivateKey); err != nil {
		return err
	}
	seen := make(map[noise.PublicKey]bool, len(cc.Peers))
	for _, pc := range cc.Peers {
		if seen[pc.PublicKey] {
			return fmt.Errorf("%w: %s", ErrPeerExists, pc.PublicKey)
		}
		seen[pc.PublicKey] = true
	}
	return nil
}
