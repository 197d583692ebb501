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
// What a stage does when the queue after it is full:
//   - every data queue between stages (udprecv → decrypt workers →
//     route-in → tunwrite, tunread → route-out → encrypt workers →
//     udpsend), each Config.QueueCapacity packets: the producer waits.
//     Backpressure travels back to the edges, where the kernel's socket
//     buffer (inbound) or the TUN device's queue (outbound) fills and
//     drops or pushes back on the sender, as a network would; no queue
//     ever grows.
//   - the handshake queue: udprecv drops the message and counts it
//     (DropQueueFull), so a handshake flood never stalls data.
//   - a peer's staged queue (packets waiting for a handshake): routing
//     drops the packet and counts it (DropStagedOverflow).
const (
	// DefaultQueueCapacity is the capacity of every data queue between
	// stages (each pool worker's input and output, route-in's output to
	// tunwrite, tunread's output to route-out), in packets: about 1.4 MB
	// of slots per queue, enough to ride out a scheduling hiccup of a
	// millisecond at several Gbit/s, small enough to stay out of the way
	// of latency when a stage is slower than its input. (Measured: 64 to 256 made the pipeline slower here, the
	// stages then park and wake far more often.)
	DefaultQueueCapacity = 1000

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
	PrivateKey    noise.PrivateKey // zero: none yet (handshakes wait for one)
	FwMark        uint32           // firewall mark (SO_MARK) on the UDP packets; 0: none (see Tunnel.SetFwMark)
	Peers         []PeerConfig
	Engine        Engine // default EnginePipeline
	Workers       int    // decrypt and encrypt workers each; default GOMAXPROCS
	QueueCapacity int    // default DefaultQueueCapacity
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
		out.QueueCapacity = DefaultQueueCapacity
	}
	if out.QueueCapacity < 1 || out.QueueCapacity > 1<<20 {
		return out, fmt.Errorf("%w: queue capacity %d not in 1..%d", ErrConfig, out.QueueCapacity, 1<<20)
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
