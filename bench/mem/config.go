package mem

import (
	"runtime"
	"slices"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/memrig"
	"pipeguard/stages"
	"pipeguard/wire"
)

// Config is one run of the in-memory mode. The zero value runs the
// full sweep; zero fields take the defaults named in their comments,
// which Quick makes smaller.
type Config struct {
	Quick bool // a small sweep that still covers both engines, every direction and the ratios
	// Duration is the measured time per measurement: default 1 s, quick
	// 500 ms.
	Duration time.Duration
	Repeat   int // figures are medians of this many repeats; default 1
	// Packets, when positive, makes every measurement move exactly this
	// many packets per direction instead of running for Duration (tests).
	Packets int

	Directions []core.Direction // default every direction
	Engines    []stages.Engine  // default sequential and pipeline
	Sizes      []int            // inner packet sizes; default 64, 512, 1280; quick 64, 1280
	Peers      []int            // default 1, 4; quick 1
	Procs      []int            // GOMAXPROCS values; default 1..NumCPU; quick 1 and NumCPU
	// Workers are the pipeline's crypto workers per direction; 0 stands
	// for GOMAXPROCS. Default 1, GOMAXPROCS and twice that; quick
	// GOMAXPROCS.
	Workers []int

	NoStageCPU bool     // skip the profiled measurement behind the per-stage CPU share
	Profile    bool     // profile every measured interval, for the caller
	Out        core.Out // progress
}

// Defaults of the full and the quick sweep.
const (
	defaultDuration = time.Second
	quickDuration   = 500 * time.Millisecond
)

// Bounds of the sweep's settings.
const (
	// MinPacketSize leaves room for the IPv4 and UDP headers and the
	// sequence number the harness writes into each inner packet.
	MinPacketSize = 32
	MaxPeers      = 1 << 16
)

// WithDefaults fills c's zero fields.
func (c Config) WithDefaults() Config {
	ncpu := runtime.NumCPU()
	if c.Duration == 0 {
		c.Duration = defaultDuration
		if c.Quick {
			c.Duration = quickDuration
		}
	}
	c.Repeat = max(c.Repeat, 1)
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
	return c
}

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

// cases lists the in-memory sweep in the order it runs and the table
// shows: by direction, size, peers, GOMAXPROCS, engine, workers.
func (c *Config) cases() []memrig.Case {
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
