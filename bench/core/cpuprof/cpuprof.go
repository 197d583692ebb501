// Package cpuprof profiles only what the harness measures, and splits the
// CPU time by pipeline stage. A CPU profile is started just before each
// measured interval and stopped just after, so sealing datagrams and the
// rest of the harness's setup stay out of it, and the intervals'
// profiles are merged. Go allows one CPU profile at a time, so the
// whole-run profile (--cpuprofile) and the per-stage share come from the
// same interval profiles. StageShares groups a profile's samples by the
// "stage" pprof label every stage of the engine runs under.
//
// It parses profiles with github.com/google/pprof/profile, the parser go
// tool pprof itself uses: reading the labels of samples means decoding
// the profile's protocol buffer, which is not worth writing again.
package cpuprof

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"pipeguard/bench/core"
)

// stageLabel is the pprof label the engine puts on each stage's goroutine.
const stageLabel = "stage"

// Interval takes a CPU profile of one measured interval. The zero
// value is ready; it is used by one goroutine.
type Interval struct {
	buf bytes.Buffer
	on  bool
}

// Begin starts the profile.
func (ip *Interval) Begin() error {
	ip.buf.Reset()
	if err := pprof.StartCPUProfile(&ip.buf); err != nil {
		return fmt.Errorf("%w: %v", ErrProfile, err)
	}
	ip.on = true
	return nil
}

// End stops the profile and returns it parsed. It waits for the
// profiler's last read, which takes up to a tenth of a second.
func (ip *Interval) End() (*profile.Profile, error) {
	if !ip.on {
		return nil, nil
	}
	pprof.StopCPUProfile()
	ip.on = false
	p, err := profile.Parse(&ip.buf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProfile, err)
	}
	return p, nil
}

// Merge merges interval profiles, skipping nils; nil for none.
func Merge(ps []*profile.Profile) (*profile.Profile, error) {
	ps = slices.DeleteFunc(slices.Clone(ps), func(p *profile.Profile) bool { return p == nil })
	switch len(ps) {
	case 0:
		return nil, nil
	case 1:
		return ps[0], nil
	}
	m, err := profile.Merge(ps)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProfile, err)
	}
	return m, nil
}

// StageShares groups a CPU profile's samples by their "stage" label and
// returns the CPU time of each stage and its share, largest first, with
// unlabelled samples as NoStage last; also the number of samples and the
// total CPU time.
func StageShares(p *profile.Profile) (shares []StageShare, samples int64, total time.Duration, err error) {
	cpu, count := -1, -1
	for i, st := range p.SampleType {
		switch {
		case st.Type == "cpu" && st.Unit == "nanoseconds":
			cpu = i
		case st.Type == "samples" && st.Unit == "count":
			count = i
		}
	}
	if cpu < 0 {
		return nil, 0, 0, fmt.Errorf("%w: no cpu/nanoseconds sample type", ErrProfile)
	}
	by := map[string]int64{}
	for _, s := range p.Sample {
		name := NoStage
		if v := s.Label[stageLabel]; len(v) > 0 {
			name = v[0]
		}
		by[name] += s.Value[cpu]
		total += time.Duration(s.Value[cpu])
		if count >= 0 {
			samples += s.Value[count]
		}
	}
	if _, ok := by[NoStage]; !ok {
		by[NoStage] = 0 // shown as 0, so a reader sees nothing was left out
	}
	for name, ns := range by {
		shares = append(shares, StageShare{Stage: name, Seconds: time.Duration(ns).Seconds(), Share: core.Ratio(float64(ns), float64(total))})
	}
	slices.SortFunc(shares, func(a, b StageShare) int {
		if (a.Stage == NoStage) != (b.Stage == NoStage) {
			if a.Stage == NoStage {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(b.Seconds, a.Seconds), cmp.Compare(a.Stage, b.Stage))
	})
	return shares, samples, total, nil
}

// Write writes p, gzipped as go tool pprof reads it, to path.
func Write(path string, p *profile.Profile) error {
	if p == nil {
		return fmt.Errorf("%w: nothing was profiled", ErrProfile)
	}
	return core.WriteFile(path, p.Write)
}

// WriteAllocs writes the allocation profile (every allocation
// sampled since the process started, and what is live) to path.
func WriteAllocs(path string) error {
	runtime.GC() // make the live figures current
	return core.WriteFile(path, func(w io.Writer) error { return pprof.Lookup("allocs").WriteTo(w, 0) })
}

// ErrProfile is wrapped when a CPU profile cannot be taken or read.
var ErrProfile = errors.New("bench: bad profile")

// NoStage names profile samples without a stage label: the runtime (GC
// workers, scheduler), the harness and its feed goroutine.
const NoStage = "(no stage)"

// StageShare is one stage's CPU time and its share of the profile.
type StageShare struct {
	Stage   string  `json:"stage"`
	Seconds float64 `json:"cpu_seconds"`
	Share   float64 `json:"share"` // of all profiled CPU time, 0..1
}
