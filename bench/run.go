package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"pipeguard/stages"
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
		Machine: describeMachine(cfg.CommandLine),
		Settings: Settings{Mode: string(cfg.Mode), Quick: cfg.Quick, DurationSeconds: cfg.Duration.Seconds(),
			Repeat: cfg.Repeat, Packets: cfg.Packets},
	}
	if cfg.Mode == ModeNetns || cfg.Mode == ModeAll {
		if rep.Netns, err = runNetns(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeLoadgen || cfg.Mode == ModeAll {
		if rep.Loadgen, err = runLoadgen(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeSoak {
		if rep.Soak, err = runSoak(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	var profs []*profile.Profile
	if cfg.Mode == ModeFlood {
		if rep.Flood, profs, err = runFlood(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeMem || cfg.Mode == ModeAll {
		if rep.Mem, profs, err = runMem(ctx, &cfg); err != nil {
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
		if err := writeFile(cfg.SVGPath, rep.WriteSVG); err != nil {
			return nil, err
		}
	}
	if cfg.CPUProfile != "" {
		p, err := mergeProfiles(profs)
		if err == nil {
			err = writeProfile(cfg.CPUProfile, p)
		}
		if err != nil {
			return nil, err
		}
	}
	if cfg.MemProfile != "" {
		if err := writeAllocProfile(cfg.MemProfile); err != nil {
			return nil, err
		}
	}
	if rep.Soak != nil && !rep.Soak.Summary.Held {
		return rep, fmt.Errorf("%w: %s", ErrSoak, strings.Join(rep.Soak.Failures, "; "))
	}
	return rep, nil
}

func describeMachine(cmdline []string) Machine {
	return Machine{
		CPUModel:    cpuModel(),
		Cores:       runtime.NumCPU(),
		GoVersion:   runtime.Version(),
		OS:          runtime.GOOS,
		Arch:        runtime.GOARCH,
		Kernel:      kernel(),
		Date:        time.Now().UTC().Format(time.RFC3339),
		CommandLine: cmdline,
		LoadAverage: loadAverage(),
	}
}

// stageCPUDuration is the least measured time of the profiled pipeline
// measurement: at 100 samples a second per core, a second on two cores
// gives shares to about half a percent.
const stageCPUDuration = time.Second

// runMem runs the in-memory sweep, the AEAD limits and the profiled
// pipeline measurement, repeats outermost so that a disturbance on the
// machine spreads over the cases instead of spoiling one. It returns the
// interval profiles when cfg asks for a CPU profile.
func runMem(ctx context.Context, cfg *Config) (*MemReport, []*profile.Profile, error) {
	cases, aeads := cfg.memCases(), cfg.aeadCases()
	steps := (len(cases) + len(aeads)) * cfg.Repeat
	if !cfg.NoStageCPU {
		steps++
	}
	prog := newProgress(cfg.Progress, cfg.ProgressTTY, steps)
	defer prog.finish()
	pl := plan{duration: cfg.Duration, packets: cfg.Packets}
	samples := make([][]MemSample, len(cases))
	aeadSamples := make([][]MemSample, len(aeads))
	var profs []*profile.Profile
	for range cfg.Repeat {
		for i, mc := range cases {
			prog.begin(mc.String())
			s, p, err := measureMem(ctx, mc, pl, cfg.CPUProfile != "")
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", mc, err)
			}
			samples[i] = append(samples[i], s)
			profs = append(profs, p)
			prog.end(mc.String(), fmt.Sprintf("%.2f Gbit/s", s.gbps(mc.PacketSize)))
		}
		for i, a := range aeads {
			what := fmt.Sprintf("AEAD limit %d B, GOMAXPROCS %d", a.PacketSize, a.Procs)
			prog.begin(what)
			s, err := bestAEAD(ctx, a, pl)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", what, err)
			}
			aeadSamples[i] = append(aeadSamples[i], s)
			prog.end(what, fmt.Sprintf("%.2f Gbit/s", s.gbps(a.PacketSize)))
		}
	}
	rep := summarize(cases, samples, aeads, aeadSamples)
	if !cfg.NoStageCPU {
		mc := cfg.stageCase()
		what := "CPU profile by stage: " + mc.String()
		prog.begin(what)
		spl := pl
		spl.duration = max(pl.duration, stageCPUDuration)
		s, p, err := measureMem(ctx, mc, spl, true)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		profs = append(profs, p)
		if rep.StageCPU, err = stageCPU(mc, p); err != nil {
			return nil, nil, err
		}
		rep.StageCPU.WallSeconds = s.Seconds
		prog.end(what, fmt.Sprintf("%d samples", rep.StageCPU.Samples))
	}
	return rep, profs, nil
}

// aeadTries is how many short runs make one AEAD limit sample. The limit
// is a ceiling, what the cores can do at best, so the best of a few short
// runs estimates it better than one long run that a disturbance on the
// machine (another process on one of the cores) can halve.
const aeadTries = 3

// bestAEAD measures the AEAD limit in aeadTries runs of a third of the
// duration each and keeps the fastest; with a fixed packet count, once.
func bestAEAD(ctx context.Context, a AEADLimit, pl plan) (MemSample, error) {
	if pl.packets > 0 {
		return measureAEAD(ctx, a, pl)
	}
	var best MemSample
	short := plan{duration: pl.duration / aeadTries}
	for range aeadTries {
		s, err := measureAEAD(ctx, a, short)
		if err != nil {
			return MemSample{}, err
		}
		if s.mpps() > best.mpps() {
			best = s
		}
	}
	return best, nil
}

func stageCPU(mc MemCase, p *profile.Profile) (*StageCPU, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: the pipeline measurement was not profiled", ErrProfile)
	}
	shares, n, total, err := StageShares(p)
	if err != nil {
		return nil, err
	}
	return &StageCPU{Case: mc, Samples: n, CPUSeconds: total.Seconds(), Stages: shares}, nil
}

// summarize turns the samples into figures: medians over the repeats,
// then the ratios, pipeline over sequential and each over the AEAD limit.
func summarize(cases []MemCase, samples [][]MemSample, aeads []AEADLimit, aeadSamples [][]MemSample) *MemReport {
	rep := &MemReport{}
	for i, a := range aeads {
		a.Samples = aeadSamples[i]
		a.Gbps = medianOf(a.Samples, func(s MemSample) float64 { return s.gbps(a.PacketSize) })
		a.Mpps = medianOf(a.Samples, MemSample.mpps)
		rep.AEAD = append(rep.AEAD, a)
	}
	for i, mc := range cases {
		r := MemResult{MemCase: mc, Samples: samples[i]}
		r.Gbps = medianOf(r.Samples, func(s MemSample) float64 { return s.gbps(mc.PacketSize) })
		r.Mpps = medianOf(r.Samples, MemSample.mpps)
		r.CPUNsPerPacket = medianOf(r.Samples, MemSample.cpuNsPerPacket)
		r.AllocsPerPacket = medianOf(r.Samples, MemSample.allocsPerPacket)
		rep.Results = append(rep.Results, r)
	}
	fillRatios(rep)
	return rep
}

// fillRatios sets each result's ratios from the medians: VsSequential on
// pipeline rows, and the AEAD limit at the same size and GOMAXPROCS.
func fillRatios(rep *MemReport) {
	seq := map[MemCase]float64{}
	for _, r := range rep.Results {
		if r.Engine == engineSequential {
			seq[r.seqKey()] = r.Gbps
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		r.VsSequential = 0
		if r.Engine != engineSequential {
			r.VsSequential = ratio(r.Gbps, seq[r.seqKey()])
		}
		r.AEADGbps, r.OfAEAD = 0, 0
		for _, a := range rep.AEAD {
			if a.PacketSize == r.PacketSize && a.Procs == r.Procs {
				r.AEADGbps, r.OfAEAD = a.Gbps, ratio(r.Gbps, a.Gbps)
			}
		}
	}
}

const engineSequential = string(stages.EngineSequential)

// seqKey is the case of the sequential row a pipeline row compares with.
func (mc MemCase) seqKey() MemCase {
	mc.Engine, mc.Workers = engineSequential, 0
	return mc
}

// String describes the case in words, for progress lines.
func (mc MemCase) String() string {
	s := fmt.Sprintf("%s %d B, %d peer%s", mc.Direction, mc.PacketSize, mc.Peers, plural(mc.Peers))
	s += fmt.Sprintf(", GOMAXPROCS %d, %s", mc.Procs, mc.Engine)
	if mc.Workers > 0 {
		s += fmt.Sprintf(" with %d worker%s", mc.Workers, plural(mc.Workers))
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
