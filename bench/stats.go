package bench

import (
	"math"
	"slices"
	"time"
)

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. It does not change xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method, or 0 for none: the smallest value with at least p%
// of the values at or below it. It does not change xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p*float64(len(s))/100 - 1e-9)) // tolerate p*n/100 landing a hair above an integer
	return s[min(max(rank, 1), len(s))-1]
}

// ratio is a/b, or 0 when b is not positive: a missing baseline shows as
// no ratio, never as infinity.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// Figures derived from one sample.
func (s MemSample) gbps(packetSize int) float64 {
	return ratio(float64(s.Packets)*float64(packetSize)*8, s.Seconds) / 1e9
}

func (s MemSample) mpps() float64 { return ratio(float64(s.Packets), s.Seconds) / 1e6 }

func (s MemSample) cpuNsPerPacket() float64 {
	return ratio(s.CPUSeconds*float64(time.Second), float64(s.Packets))
}

func (s MemSample) allocsPerPacket() float64 { return ratio(float64(s.Mallocs), float64(s.Packets)) }

// medianOf is the median of f over the samples.
func medianOf(samples []MemSample, f func(MemSample) float64) float64 {
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = f(s)
	}
	return median(xs)
}
