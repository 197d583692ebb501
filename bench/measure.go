package bench

import (
	"context"
	"runtime"
	"time"

	"github.com/google/pprof/profile"

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
	// warmupPackets run through a fresh tunnel before any clock starts,
	// and give the rate that sizes the first round.
	warmupPackets = 4096
)

// plan is how long each measurement runs.
type plan struct {
	duration time.Duration
	packets  int // when positive: exactly this many per direction, one round
}

// memRun is one in-memory measurement: a rig, and the buffer its inbound
// rounds are sealed into.
type memRun struct {
	mc      MemCase
	rig     *Rig
	backing []byte
	dgrams  [][]byte
	prof    *intervalProfiler // nil: not profiled
	profs   []*profile.Profile
}

// measureMem measures one case. With profiling, it also returns a CPU
// profile of the measured intervals.
func measureMem(ctx context.Context, mc MemCase, pl plan, profiling bool) (MemSample, *profile.Profile, error) {
	prev := runtime.GOMAXPROCS(mc.Procs)
	defer runtime.GOMAXPROCS(prev)
	rig, err := NewRig(Options{Engine: stages.Engine(mc.Engine), Workers: mc.Workers, PacketSize: mc.PacketSize, Peers: mc.Peers})
	if err != nil {
		return MemSample{}, nil, err
	}
	defer rig.Close()
	m := &memRun{mc: mc, rig: rig}

	warm := warmupPackets
	if pl.packets > 0 {
		warm = min(warm, pl.packets)
	}
	w, err := m.round(warm)
	if err != nil {
		return MemSample{}, nil, err
	}
	if profiling {
		m.prof = &intervalProfiler{}
	}
	var total MemSample
	if pl.packets > 0 {
		total, err = m.round(pl.packets)
	} else {
		total, err = m.forDuration(ctx, pl.duration, w)
	}
	if err != nil {
		return MemSample{}, nil, err
	}
	p, err := mergeProfiles(m.profs)
	return total, p, err
}

// forDuration runs rounds until their measured time reaches d, sizing
// each from the rate so far.
func (m *memRun) forDuration(ctx context.Context, d time.Duration, warm MemSample) (MemSample, error) {
	perDir := 1.0
	if m.mc.Direction == Both {
		perDir = 2
	}
	maxRound := maxRoundPackets
	if m.mc.Direction != Outbound {
		maxRound = max(minRound, maxRoundBytes/m.rig.DatagramSize())
	}
	var total MemSample
	rate := warm // the rate so far: warm-up until a round was measured
	for total.Seconds < d.Seconds() {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		left := d.Seconds() - total.Seconds
		k := int(float64(rate.Packets) / rate.Seconds / perDir * left * 1.05) // a little over: no tiny last round
		k = min(max(k, minRound), maxRound)
		s, err := m.round(k)
		if err != nil {
			return total, err
		}
		total.add(s)
		rate = total
	}
	return total, nil
}

func (s *MemSample) add(o MemSample) {
	s.Packets += o.Packets
	s.Seconds += o.Seconds
	s.CPUSeconds += o.CPUSeconds
	s.Mallocs += o.Mallocs
}

// round moves k packets per direction and measures that alone.
func (m *memRun) round(k int) (MemSample, error) {
	var dgrams [][]byte
	if m.mc.Direction != Outbound {
		dgrams = m.seal(k)
	}
	runtime.GC() // the harness's garbage is not the tunnel's
	if m.prof != nil {
		if err := m.prof.begin(); err != nil {
			return MemSample{}, err
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, t0 := processCPU(), time.Now()
	var err error
	switch m.mc.Direction {
	case Inbound:
		err = m.rig.RunInbound(dgrams)
	case Outbound:
		err = m.rig.RunOutbound(k)
	case Both:
		err = m.rig.RunBoth(dgrams, k)
	}
	wall, cpu := time.Since(t0), processCPU()-cpu0
	runtime.ReadMemStats(&ms1)
	if m.prof != nil {
		p, perr := m.prof.end()
		if err == nil {
			err = perr
		}
		m.profs = append(m.profs, p)
	}
	if err != nil {
		return MemSample{}, err
	}
	n := uint64(k)
	if m.mc.Direction == Both {
		n *= 2
	}
	return MemSample{Packets: n, Seconds: wall.Seconds(), CPUSeconds: cpu.Seconds(), Mallocs: ms1.Mallocs - ms0.Mallocs}, nil
}

// seal seals k datagrams into the run's reused buffer.
func (m *memRun) seal(k int) [][]byte {
	size := m.rig.DatagramSize()
	if len(m.backing) < k*size {
		m.backing = make([]byte, k*size)
		m.dgrams = make([][]byte, k)
	}
	out := m.dgrams[:k]
	m.rig.SealInto(out, m.backing)
	return out
}
