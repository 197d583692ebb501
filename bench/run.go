package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/pprof/profile"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/flood"
	"pipeguard/bench/loadgen"
	"pipeguard/bench/mem"
	"pipeguard/bench/netns"
	"pipeguard/bench/peers"
	"pipeguard/bench/soak"
)

// Run runs the harness as cfg says: it measures, prints the table to
// stdout, writes the files cfg names (JSON, SVG, profiles), and returns
// the report. It stops between measurements when ctx ends.
func Run(ctx context.Context, cfg Config, stdout io.Writer) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Machine: core.DescribeMachine(cfg.CommandLine),
		Settings: core.Settings{Mode: string(cfg.Mode), Quick: cfg.Quick, DurationSeconds: cfg.duration().Seconds(),
			Repeat: cfg.Repeat, Packets: cfg.Packets},
	}
	if cfg.Mode == ModeNetns || cfg.Mode == ModeAll {
		if rep.Netns, err = netns.Measure(ctx, cfg.netns()); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeLoadgen || cfg.Mode == ModeAll {
		if rep.Loadgen, err = loadgen.Measure(ctx, cfg.loadgen()); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeSoak {
		if rep.Soak, err = soak.Measure(ctx, cfg.soak()); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModePeers {
		if rep.Peers, err = peers.Measure(ctx, cfg.peers()); err != nil {
			return nil, err
		}
	}
	var profs []*profile.Profile
	if cfg.Mode == ModeFlood {
		if rep.Flood, profs, err = flood.Measure(ctx, cfg.flood()); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeMem || cfg.Mode == ModeAll {
		if rep.Mem, profs, err = mem.Measure(ctx, cfg.mem()); err != nil {
			return nil, err
		}
	}
	if err := rep.WriteTable(stdout); err != nil {
		return nil, err
	}
	if cfg.JSONPath != "" {
		if err := rep.WriteJSONFile(cfg.JSONPath); err != nil {
			return nil, err
		}
	}
	if cfg.SVGPath != "" {
		if err := core.WriteFile(cfg.SVGPath, rep.WriteSVG); err != nil {
			return nil, err
		}
	}
	if cfg.CPUProfile != "" {
		p, err := cpuprof.Merge(profs)
		if err == nil {
			err = cpuprof.Write(cfg.CPUProfile, p)
		}
		if err != nil {
			return nil, err
		}
	}
	if cfg.MemProfile != "" {
		if err := cpuprof.WriteAllocs(cfg.MemProfile); err != nil {
			return nil, err
		}
	}
	if rep.Soak != nil && !rep.Soak.Summary.Held {
		return rep, fmt.Errorf("%w: %s", ErrSoak, strings.Join(rep.Soak.Failures, "; "))
	}
	return rep, nil
}

// IsTerminal reports whether f is a terminal: then the progress
// indicator is one line rewritten in place.
func IsTerminal(f *os.File) bool { return core.IsTerminal(f) }
