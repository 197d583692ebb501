package bench

import (
	"fmt"
	"io"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/flood"
	"pipeguard/bench/loadgen"
	"pipeguard/bench/mem"
	"pipeguard/bench/netns"
	"pipeguard/bench/peers"
	"pipeguard/bench/soak"
	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/wire"
)

// Mode selects what the harness measures.
type Mode string

// Modes.
const (
	ModeMem     Mode = "mem"     // whole tunnels with in-memory ends; no root needed
	ModeNetns   Mode = "netns"   // real TUN devices in network namespaces; root
	ModeLoadgen Mode = "loadgen" // one tunnel under load, the harness its peer; root
	ModeAll     Mode = "all"     // netns, loadgen, then mem
	// ModeSoak runs two PipeGuard ends in network namespaces for
	// Duration with traffic and config changes, watching for growth; root.
	ModeSoak Mode = "soak"
	// ModeFlood runs one tunnel in memory with bulk data under a
	// handshake flood; no root needed.
	ModeFlood Mode = "flood"
	// ModePeers configures PipeGuard and wireguard-go with many peers in
	// network namespaces and measures time, memory and idle CPU; root.
	ModePeers Mode = "peers"
)

// Config is one run of the harness: cmd/bench's flags. The zero value
// runs the full in-memory sweep; zero fields take the defaults of the
// mode that uses them (each mode's Config names them), which Quick makes
// smaller.
type Config struct {
	Mode  Mode // default ModeMem
	Quick bool // a small sweep that still covers both engines, every direction and the ratios
	// Duration is the measured time per measurement, and each mode has
	// its own default: in memory, per measurement (1 s, quick 500 ms);
	// netns, each iperf3 run (10 s, quick 2 s); loadgen, each tunnel and
	// direction (10 s, quick 2 s); soak, the traffic watched (10 min,
	// quick 20 s); flood, each phase (3 s, quick 2 s).
	Duration time.Duration
	Repeat   int // figures are medians of this many repeats; default 1
	// Packets, when positive, makes every measurement move exactly this
	// many packets per direction instead of running for Duration (tests).
	Packets int

	Directions []core.Direction // in memory; default every direction (flood: the first, default both)
	Engines    []stages.Engine  // default sequential and pipeline
	Sizes      []int            // inner packet sizes; default 64, 512, 1280; quick 64, 1280 (flood: the first, default 1280)
	Peers      []int            // default 1, 4; quick 1 (peers mode: 1, 1000, 10000, 100000; quick 1, 100, 1000)
	Procs      []int            // GOMAXPROCS values; default 1..NumCPU; quick 1 and NumCPU
	// Workers are the pipeline's crypto workers per direction; 0 stands
	// for GOMAXPROCS. Default 1, GOMAXPROCS and twice that; quick
	// GOMAXPROCS.
	Workers []int

	// Streams are the netns mode's iperf3 parallel TCP streams (-P);
	// default 1 and 4, each run in both directions.
	Streams []int
	// QueueManagement is which PipeGuard tunnels the netns and loadgen
	// modes measure: "on" (queue management as it ships), "off"
	// (--queue-management off), or "both" (each engine both ways, the
	// default: what managing the queues costs in throughput and buys in
	// latency, in one run).
	QueueManagement string
	// CongestionControl is the netns mode's TCP congestion control for
	// iperf3's streams; default cubic.
	CongestionControl string
	// SoakEvery is how often the soak mode reloads each end with SIGHUP
	// and changes its peer with wg set; default 1 min.
	SoakEvery time.Duration
	// Burst is the peers mode's handshake burst: peers that start a
	// handshake within one second; default 1000, quick 100.
	Burst int

	NoStageCPU bool   // skip the profiled measurement behind the per-stage CPU share
	CPUProfile string // file for a CPU profile of every measured interval
	MemProfile string // file for the allocation profile at the end
	JSONPath   string // file for the report as JSON
	SVGPath    string // file for the throughput chart

	// CommandLine is recorded in the report.
	CommandLine []string
	// Progress receives the progress indicator (stderr); nil for none.
	// ProgressTTY makes it one line rewritten in place.
	Progress    io.Writer
	ProgressTTY bool
}

// withDefaults fills the mode and the repeats, and checks every setting,
// so that a run of several modes fails before the first starts. Duration
// and the sweep's lists stay as they were given: each mode's Config
// fills its own defaults (duration says which one the report records).
func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModeMem
	}
	if c.Repeat == 0 {
		c.Repeat = 1
	}
	return c, c.check()
}

// check refuses a setting no mode can run with, wrapping ErrConfig.
func (c *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch c.Mode {
	case ModeMem, ModeNetns, ModeLoadgen, ModeAll, ModeSoak, ModeFlood, ModePeers:
	default:
		return bad("mode %q is not mem, netns, loadgen, all, soak, flood or peers", c.Mode)
	}
	if sc := c.soak(); c.Mode == ModeSoak && (sc.Duration < time.Second || sc.Every < time.Second) {
		return bad("soak duration and change interval must be at least 1s")
	}
	if d := c.loadgen().Duration; (c.Mode == ModeLoadgen || c.Mode == ModeAll) && d > loadgen.MaxDuration {
		return bad("loadgen duration %v is over %v: a tunnel's cells run on one session, which must end before Rekey-After-Time (%v)",
			d, loadgen.MaxDuration, noise.RekeyAfterTime)
	}
	if c.Duration < 0 || c.Repeat < 1 || c.Packets < 0 {
		return bad("duration, repeat and packets must be positive")
	}
	switch c.QueueManagement {
	case "", "on", "off", "both":
	default:
		return bad("queue management %q is not on, off or both", c.QueueManagement)
	}
	if c.Burst < 0 || c.Burst > peers.MaxPeers {
		return bad("burst %d not in 1..%d", c.Burst, peers.MaxPeers)
	}
	for _, d := range c.Directions {
		if d != core.Inbound && d != core.Outbound && d != core.Both {
			return bad("direction %q is not inbound, outbound or both", d)
		}
	}
	for _, e := range c.Engines {
		if e != stages.EngineSequential && e != stages.EnginePipeline {
			return bad("engine %q is not sequential or pipeline", e)
		}
	}
	for _, s := range c.Sizes {
		if s < mem.MinPacketSize || s > wire.MaxInnerSize {
			return bad("packet size %d not in %d..%d", s, mem.MinPacketSize, wire.MaxInnerSize)
		}
	}
	maxPeers := mem.MaxPeers
	if c.Mode == ModePeers {
		maxPeers = peers.MaxPeers
	}
	for _, p := range c.Peers {
		if p < 1 || p > maxPeers {
			return bad("peers %d not in 1..%d", p, maxPeers)
		}
	}
	for _, p := range c.Procs {
		if p < 1 || p > 1024 {
			return bad("GOMAXPROCS %d not in 1..1024", p)
		}
	}
	for _, n := range c.Streams {
		if n < 1 || n > netns.MaxStreams {
			return bad("streams %d not in 1..%d", n, netns.MaxStreams)
		}
	}
	for _, w := range c.Workers {
		if w < 0 || w > 256 {
			return bad("workers %d not in 1..256 (0: GOMAXPROCS)", w)
		}
	}
	return nil
}

// duration is the measured time per measurement that the report's
// settings record: the flood mode's per phase, the soak's traffic, and
// otherwise the in-memory mode's per measurement (which the netns and
// loadgen modes leave as it is).
func (c *Config) duration() time.Duration {
	switch c.Mode {
	case ModeFlood:
		return c.flood().Duration
	case ModeSoak:
		return c.soak().Duration
	case ModePeers:
		return c.peers().Idle
	}
	return c.mem().Duration
}

// peers is the peers mode's config, with its defaults: --duration is its
// idle CPU window.
func (c *Config) peers() peers.Config {
	return peers.Config{Quick: c.Quick, Peers: c.Peers, Idle: c.Duration, Burst: c.Burst, Repeat: c.Repeat, Out: c.out()}.WithDefaults()
}

// mem is the in-memory mode's config, with its defaults.
func (c *Config) mem() mem.Config {
	return mem.Config{Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat, Packets: c.Packets,
		Directions: c.Directions, Engines: c.Engines, Sizes: c.Sizes, Peers: c.Peers, Procs: c.Procs, Workers: c.Workers,
		NoStageCPU: c.NoStageCPU, Profile: c.CPUProfile != "", Out: c.out()}.WithDefaults()
}

// flood is the flood mode's config, with its defaults: one case, not a
// sweep, of the first size and direction given.
func (c *Config) flood() flood.Config {
	fc := flood.Config{Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat, Packets: c.Packets, Out: c.out()}
	if len(c.Sizes) > 0 {
		fc.Size = c.Sizes[0]
	}
	if len(c.Directions) > 0 {
		fc.Direction = c.Directions[0]
	}
	return fc.WithDefaults()
}

// soak is the soak mode's config, with its defaults.
func (c *Config) soak() soak.Config {
	return soak.Config{Quick: c.Quick, Duration: c.Duration, Every: c.SoakEvery, Out: c.out()}.WithDefaults()
}

// netns is the netns mode's config, with its defaults.
func (c *Config) netns() netns.Config {
	return netns.Config{Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat, Engines: c.Engines, Streams: c.Streams,
		Managed: c.QueueManagement != "off", Unmanaged: c.QueueManagement != "on", CongestionControl: c.CongestionControl,
		Out: c.out()}.WithDefaults()
}

// loadgen is the loadgen mode's config, with its defaults.
func (c *Config) loadgen() loadgen.Config {
	return loadgen.Config{Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat, Engines: c.Engines,
		Managed: c.QueueManagement != "off", Unmanaged: c.QueueManagement != "on", Out: c.out()}.WithDefaults()
}

// out is where the run reports its progress.
func (c *Config) out() core.Out { return core.Out{W: c.Progress, TTY: c.ProgressTTY} }
