package bench

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/memrig"
	"pipeguard/bench/flood"
	"pipeguard/bench/loadgen"
	"pipeguard/bench/netns"
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
)

// Config is one run of the harness. The zero value runs the full
// in-memory sweep; zero fields take the defaults named in their comments,
// which Quick makes smaller.
type Config struct {
	Mode  Mode // default ModeMem
	Quick bool // a small sweep that still covers both engines, every direction and the ratios
	// Duration is the measured time per measurement: in memory, default
	// 1 s, quick 500 ms; in netns mode, each iperf3 run's -t (rounded up
	// to whole seconds), default 10 s, quick 2 s.
	Duration time.Duration
	Repeat   int // figures are medians of this many repeats; default 1
	// Packets, when positive, makes every measurement move exactly this
	// many packets per direction instead of running for Duration (tests).
	Packets int

	Directions []core.Direction // in memory; default every direction
	Engines    []stages.Engine  // default sequential and pipeline (both modes)
	Sizes      []int            // inner packet sizes; default 64, 512, 1280; quick 64, 1280
	Peers      []int            // default 1, 4; quick 1
	Procs      []int            // GOMAXPROCS values; default 1..NumCPU; quick 1 and NumCPU
	// Workers are the pipeline's crypto workers per direction; 0 stands
	// for GOMAXPROCS. Default 1, GOMAXPROCS and twice that; quick
	// GOMAXPROCS.
	Workers []int

	// Streams are the netns mode's iperf3 parallel TCP streams (-P);
	// default 1 and 4, each run in both directions.
	Streams []int
	// SoakEvery is how often the soak mode reloads each end with SIGHUP
	// and changes its peer with wg set; default 1 min. (In soak mode,
	// Duration is the traffic watched: default 10 min, quick 20 s.)
	SoakEvery time.Duration

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

// Defaults of the full and the quick sweep.
const (
	defaultDuration = time.Second
	quickDuration   = 500 * time.Millisecond
	// minPacketSize leaves room for the IPv4 and UDP headers and the
	// sequence number the harness writes into each inner packet.
	minPacketSize = 32
	maxPeers      = 1 << 16
)

// Duration is left as it was given: each mode has its own default for
// it, which the mode's Config fills (Config.duration says which applies).

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	ncpu := runtime.NumCPU()
	if c.Mode == "" {
		c.Mode = ModeMem
	}
	if c.Mode == ModeFlood {
		// One case, not a sweep: the largest packets both ways, unless set.
		if len(c.Sizes) == 0 {
			c.Sizes = []int{wire.MaxInnerSize}
		}
		if len(c.Directions) == 0 {
			c.Directions = []core.Direction{core.Both}
		}
	}
	if c.Repeat == 0 {
		c.Repeat = 1
	}
	if len(c.Directions) == 0 {
		c.Directions = []core.Direction{core.Inbound, core.Outbound, core.Both}
	}
	if len(c.Engines) == 0 {
		c.Engines = []stages.Engine{stages.EngineSequential, stages.EnginePipeline}
	}
	if len(c.Sizes) == 0 {
		c.Sizes = []int{64, 512, wire.MaxInnerSize}
		if c.Quick {
			c.Sizes = []int{64, wire.MaxInnerSize}
		}
	}
	if len(c.Peers) == 0 {
		c.Peers = []int{1, 4}
		if c.Quick {
			c.Peers = []int{1}
		}
	}
	if len(c.Procs) == 0 {
		for p := 1; p <= ncpu; p++ {
			if !c.Quick || p == 1 || p == ncpu {
				c.Procs = append(c.Procs, p)
			}
		}
	}
	return c, c.check()
}

func (c *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch c.Mode {
	case ModeMem, ModeNetns, ModeLoadgen, ModeAll, ModeSoak, ModeFlood:
	default:
		return bad("mode %q is not mem, netns, loadgen, all, soak or flood", c.Mode)
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
		if s < minPacketSize || s > wire.MaxInnerSize {
			return bad("packet size %d not in %d..%d", s, minPacketSize, wire.MaxInnerSize)
		}
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
		return flood.Config{Quick: c.Quick, Duration: c.Duration}.WithDefaults().Duration
	case ModeSoak:
		return c.soak().Duration
	}
	if c.Duration != 0 {
		return c.Duration
	}
	if c.Quick {
		return quickDuration
	}
	return defaultDuration
}

// soak is the soak mode's config, with its defaults.
func (c *Config) soak() soak.Config {
	return soak.Config{Quick: c.Quick, Duration: c.Duration, Every: c.SoakEvery, Out: c.out()}.WithDefaults()
}

// netns is the netns mode's config, with its defaults.
func (c *Config) netns() netns.Config {
	return netns.Config{Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat, Engines: c.Engines, Streams: c.Streams,
		Out: c.out()}.WithDefaults()
}

// loadgen is the loadgen mode's config, with its defaults.
func (c *Config) loadgen() loadgen.Config {
	return loadgen.Config{Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat, Engines: c.Engines, Out: c.out()}.WithDefaults()
}

// out is where the run reports its progress.
func (c *Config) out() core.Out { return core.Out{W: c.Progress, TTY: c.ProgressTTY} }

// workersFor resolves the configured worker counts at GOMAXPROCS procs,
// in order, without repeats.
func (c *Config) workersFor(procs int) []int {
	ws := c.Workers
	switch {
	case len(ws) > 0:
	case c.Quick:
		ws = []int{procs}
	default:
		ws = []int{1, procs, 2 * procs}
	}
	var out []int
	for _, w := range ws {
		if w == 0 {
			w = procs
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// memCases lists the in-memory sweep in the order it runs and the table
// shows: by direction, size, peers, GOMAXPROCS, engine, workers.
func (c *Config) memCases() []memrig.Case {
	var out []memrig.Case
	for _, d := range c.Directions {
		for _, size := range c.Sizes {
			for _, peers := range c.Peers {
				for _, procs := range c.Procs {
					for _, e := range c.Engines {
						mc := memrig.Case{Direction: d, Engine: string(e), PacketSize: size, Peers: peers, Procs: procs}
						if e == stages.EngineSequential {
							out = append(out, mc)
							continue
						}
						for _, w := range c.workersFor(procs) {
							mc.Workers = w
							out = append(out, mc)
						}
					}
				}
			}
		}
	}
	return out
}

// aeadCases lists the AEAD limits the sweep needs: each size at each
// GOMAXPROCS.
func (c *Config) aeadCases() []AEADLimit {
	var out []AEADLimit
	for _, size := range c.Sizes {
		for _, procs := range c.Procs {
			out = append(out, AEADLimit{PacketSize: size, Procs: procs})
		}
	}
	return out
}

// stageCase is the pipeline measurement profiled for the per-stage CPU
// share: both directions at once, the largest size, the fewest peers,
// every core, as many workers as cores.
func (c *Config) stageCase() memrig.Case {
	return memrig.Case{
		Direction:  core.Both,
		Engine:     string(stages.EnginePipeline),
		PacketSize: slices.Max(c.Sizes),
		Peers:      slices.Min(c.Peers),
		Procs:      slices.Max(c.Procs),
		Workers:    slices.Max(c.Procs),
	}
}
