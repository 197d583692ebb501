package memrig

import (
	"context"
	"runtime"
	"time"

	"github.com/google/pprof/profile"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/stages"
)

// How a measurement is cut into rounds. Inbound datagrams must be sealed
// before the clock starts and each carries a fresh counter, so a long
// measurement is a series of rounds: seal a round's datagrams (clock
// stopped), run them through (clock running), repeat until the measured
// time reaches the duration. Figures sum the measured intervals only.
const (
	// maxRoundBytes bounds the datagrams sealed ahead of one round, so
	// a second at several Gbit/s does not need gigabytes of memory.
	maxRoundBytes = 64 << 20
	// maxRoundPackets bounds an outbound-only round, which needs no memory.
	maxRoundPackets = 1 << 22
	// minRound keeps the pipeline's fill at the start of a round and its
	// drain at the end (a few queues of 1000) small next to the round.
	minRound = 16384
	// WarmupPackets run through a fresh tunnel before any clock starts,
	// and give the rate that sizes the first round.
	WarmupPackets = 4096
)

// Plan is how long each measurement runs.
type Plan struct {
	Duration time.Duration
	Packets  int // when positive: exactly this many per direction, one round
}

// Measurement is one in-memory measurement: a rig, and the buffer its
// inbound rounds are sealed into. With Prof set, Round profiles each
// measured interval into Profs. Used by one goroutine.
type Measurement struct {
	Case    Case
	Rig     *Rig
	backing []byte
	dgrams  [][]byte
	Prof    *cpuprof.Interval // nil: not profiled
	Profs   []*profile.Profile
}

// Measure measures one case. With profiling, it also returns a CPU
// profile of the measured intervals.
func Measure(ctx context.Context, mc Case, pl Plan, profiling bool) (Sample, *profile.Profile, error) {
	prev := runtime.GOMAXPROCS(mc.Procs)
	defer runtime.GOMAXPROCS(prev)
	rig, err := New(Options{Engine: stages.Engine(mc.Engine), Workers: mc.Workers, PacketSize: mc.PacketSize, Peers: mc.Peers})
	if err != nil {
		return Sample{}, nil, err
	}
	defer rig.Close()
	m := &Measurement{Case: mc, Rig: rig}

	warm := WarmupPackets
	if pl.Packets > 0 {
		warm = min(warm, pl.Packets)
	}
	w, err := m.Round(warm)
	if err != nil {
		return Sample{}, nil, err
	}
	if profiling {
		m.Prof = &cpuprof.Interval{}
	}
	var total Sample
	if pl.Packets > 0 {
		total, err = m.Round(pl.Packets)
	} else {
		total, err = m.ForDuration(ctx, pl.Duration, w)
	}
	if err != nil {
		return Sample{}, nil, err
	}
	p, err := cpuprof.Merge(m.Profs)
	return total, p, err
}

// ForDuration runs rounds until their measured time reaches d, sizing
// each from the rate so far.
func (m *Measurement) ForDuration(ctx context.Context, d time.Duration, warm Sample) (Sample, error) {
	perDir := 1.0
	if m.Case.Direction == core.Both {
		perDir = 2
	}
	maxRound := maxRoundPackets
	if m.Case.Direction != core.Outbound {
		maxRound = max(minRound, maxRoundBytes/m.Rig.DatagramSize())
	}
	var total Sample
	rate := warm // the rate so far: warm-up until a round was measured
	for total.Seconds < d.Seconds() {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		left := d.Seconds() - total.Seconds
		k := int(float64(rate.Packets) / rate.Seconds / perDir * left * 1.05) // a little over: no tiny last round
		k = min(max(k, minRound), maxRound)
		s, err := m.Round(k)
		if err != nil {
			return total, err
		}
		total.Add(s)
		rate = total
	}
	return total, nil
}

// Add adds o's totals to s.
func (s *Sample) Add(o Sample) {
	s.Packets += o.Packets
	s.Seconds += o.Seconds
	s.CPUSeconds += o.CPUSeconds
	s.Mallocs += o.Mallocs
}

// Round moves k packets per direction and measures that alone.
func (m *Measurement) Round(k int) (Sample, error) {
	var dgrams [][]byte
	if m.Case.Direction != core.Outbound {
		dgrams = m.seal(k)
	}
	runtime.GC() // the harness's garbage is not the tunnel's
	if m.Prof != nil {
		if err := m.Prof.Begin(); err != nil {
			return Sample{}, err
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, t0 := core.ProcessCPU(), time.Now()
	var err error
	switch m.Case.Direction {
	case core.Inbound:
		err = m.Rig.RunInbound(dgrams)
	case core.Outbound:
		err = m.Rig.RunOutbound(k)
	case core.Both:
		err = m.Rig.RunBoth(dgrams, k)
	}
	wall, cpu := time.Since(t0), core.ProcessCPU()-cpu0
	runtime.ReadMemStats(&ms1)
	if m.Prof != nil {
		p, perr := m.Prof.End()
		if err == nil {
			err = perr
		}
		m.Profs = append(m.Profs, p)
	}
	if err != nil {
		return Sample{}, err
	}
	n := uint64(k)
	if m.Case.Direction == core.Both {
		n *= 2
	}
	return Sample{Packets: n, Seconds: wall.Seconds(), CPUSeconds: cpu.Seconds(), Mallocs: ms1.Mallocs - ms0.Mallocs}, nil
}

// seal seals k datagrams into the run's reused buffer.
func (m *Measurement) seal(k int) [][]byte {
	size := m.Rig.DatagramSize()
	if len(m.backing) < k*size {
		m.backing = make([]byte, k*size)
		m.dgrams = make([][]byte, k)
	}
	out := m.dgrams[:k]
	m.Rig.SealInto(out, m.backing)
	return out
}
