package mem

import (
	"context"
	"fmt"
	"time"

	"github.com/google/pprof/profile"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/core/memrig"
	"pipeguard/stages"
)

// stageCPUDuration is the least measured time of the profiled pipeline
// measurement: at 100 samples a second per core, a second on two cores
// gives shares to about half a percent.
const stageCPUDuration = time.Second

// Measure runs the in-memory sweep, the AEAD limits and the profiled
// pipeline measurement, repeats outermost so that a disturbance on the
// machine spreads over the cases instead of spoiling one. It returns the
// interval profiles when cfg asks for them.
func Measure(ctx context.Context, cfg Config) (*Report, []*profile.Profile, error) {
	cfg = cfg.WithDefaults()
	cases, aeads := cfg.cases(), cfg.aeadCases()
	steps := (len(cases) + len(aeads)) * cfg.Repeat
	if !cfg.NoStageCPU {
		steps++
	}
	prog := cfg.Out.Progress(steps)
	defer prog.Finish()
	pl := memrig.Plan{Duration: cfg.Duration, Packets: cfg.Packets}
	samples := make([][]memrig.Sample, len(cases))
	aeadSamples := make([][]memrig.Sample, len(aeads))
	var profs []*profile.Profile
	for range cfg.Repeat {
		for i, mc := range cases {
			prog.Begin(mc.String())
			s, p, err := memrig.Measure(ctx, mc, pl, cfg.Profile)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", mc, err)
			}
			samples[i] = append(samples[i], s)
			profs = append(profs, p)
			prog.End(mc.String(), fmt.Sprintf("%.2f Gbit/s", s.Gbps(mc.PacketSize)))
		}
		for i, a := range aeads {
			what := fmt.Sprintf("AEAD limit %d B, GOMAXPROCS %d", a.PacketSize, a.Procs)
			prog.Begin(what)
			s, err := bestAEAD(ctx, a, pl)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", what, err)
			}
			aeadSamples[i] = append(aeadSamples[i], s)
			prog.End(what, fmt.Sprintf("%.2f Gbit/s", s.Gbps(a.PacketSize)))
		}
	}
	rep := summarize(cases, samples, aeads, aeadSamples)
	if !cfg.NoStageCPU {
		mc := cfg.stageCase()
		what := "CPU profile by stage: " + mc.String()
		prog.Begin(what)
		spl := pl
		spl.Duration = max(pl.Duration, stageCPUDuration)
		s, p, err := memrig.Measure(ctx, mc, spl, true)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		profs = append(profs, p)
		if rep.StageCPU, err = stageCPU(mc, p); err != nil {
			return nil, nil, err
		}
		rep.StageCPU.WallSeconds = s.Seconds
		prog.End(what, fmt.Sprintf("%d samples", rep.StageCPU.Samples))
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
func bestAEAD(ctx context.Context, a AEADLimit, pl memrig.Plan) (memrig.Sample, error) {
	if pl.Packets > 0 {
		return measureAEAD(ctx, a, pl)
	}
	var best memrig.Sample
	short := memrig.Plan{Duration: pl.Duration / aeadTries}
	for range aeadTries {
		s, err := measureAEAD(ctx, a, short)
		if err != nil {
			return memrig.Sample{}, err
		}
		if s.Mpps() > best.Mpps() {
			best = s
		}
	}
	return best, nil
}

func stageCPU(mc memrig.Case, p *profile.Profile) (*StageCPU, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: the pipeline measurement was not profiled", cpuprof.ErrProfile)
	}
	shares, n, total, err := cpuprof.StageShares(p)
	if err != nil {
		return nil, err
	}
	return &StageCPU{Case: mc, Samples: n, CPUSeconds: total.Seconds(), Stages: shares}, nil
}

// summarize turns the samples into figures: medians over the repeats,
// then the ratios, pipeline over sequential and each over the AEAD limit.
func summarize(cases []memrig.Case, samples [][]memrig.Sample, aeads []AEADLimit, aeadSamples [][]memrig.Sample) *Report {
	rep := &Report{}
	for i, a := range aeads {
		a.Samples = aeadSamples[i]
		a.Gbps = memrig.MedianOf(a.Samples, func(s memrig.Sample) float64 { return s.Gbps(a.PacketSize) })
		a.Mpps = memrig.MedianOf(a.Samples, memrig.Sample.Mpps)
		rep.AEAD = append(rep.AEAD, a)
	}
	for i, mc := range cases {
		r := Result{Case: mc, Samples: samples[i]}
		r.Gbps = memrig.MedianOf(r.Samples, func(s memrig.Sample) float64 { return s.Gbps(mc.PacketSize) })
		r.Mpps = memrig.MedianOf(r.Samples, memrig.Sample.Mpps)
		r.CPUNsPerPacket = memrig.MedianOf(r.Samples, memrig.Sample.CPUNsPerPacket)
		r.AllocsPerPacket = memrig.MedianOf(r.Samples, memrig.Sample.AllocsPerPacket)
		rep.Results = append(rep.Results, r)
	}
	fillRatios(rep)
	return rep
}

// fillRatios sets each result's ratios from the medians: VsSequential on
// pipeline rows, and the AEAD limit at the same size and GOMAXPROCS.
func fillRatios(rep *Report) {
	seq := map[memrig.Case]float64{}
	for _, r := range rep.Results {
		if r.Engine == engineSequential {
			seq[seqKey(r.Case)] = r.Gbps
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		r.VsSequential = 0
		if r.Engine != engineSequential {
			r.VsSequential = core.Ratio(r.Gbps, seq[seqKey(r.Case)])
		}
		r.AEADGbps, r.OfAEAD = 0, 0
		for _, a := range rep.AEAD {
			if a.PacketSize == r.PacketSize && a.Procs == r.Procs {
				r.AEADGbps, r.OfAEAD = a.Gbps, core.Ratio(r.Gbps, a.Gbps)
			}
		}
	}
}

const engineSequential = string(stages.EngineSequential)

// seqKey is the case of the sequential row a pipeline row compares with.
func seqKey(mc memrig.Case) memrig.Case {
	mc.Engine, mc.Workers = engineSequential, 0
	return mc
}
