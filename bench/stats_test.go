package bench

import (
	"math"
	"slices"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1}, 2},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1, 10, 1}, 10},
	} {
		in := slices.Clone(tc.in)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median changed its input: %v", in)
		}
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	for _, tc := range []struct {
		in   []float64
		p    float64
		want float64
	}{
		{nil, 50, 0},
		{[]float64{7}, 99, 7},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 100, 100},
		{hundred, 1, 1},
		{[]float64{1, 2, 3, 4}, 50, 2},
		{[]float64{1, 2, 3, 4}, 99, 4},
		{[]float64{5, 1, 4, 2, 3}, 50, 3},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(3, 2); got != 1.5 {
		t.Errorf("ratio(3, 2) = %v", got)
	}
	for _, b := range []float64{0, -1} {
		if got := ratio(1, b); got != 0 || math.IsInf(got, 0) {
			t.Errorf("ratio(1, %v) = %v, want 0", b, got)
		}
	}
}

func TestSampleFigures(t *testing.T) {
	// 1e6 packets of 1250 bytes in 2 s: 5 Gbit/s, 0.5 Mpps; 3 s of CPU is
	// 3000 ns a packet; 500 allocations are 0.0005 a packet.
	s := MemSample{Packets: 1e6, Seconds: 2, CPUSeconds: 3, Mallocs: 500}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"gbps", s.gbps(1250), 5},
		{"mpps", s.mpps(), 0.5},
		{"cpu", s.cpuNsPerPacket(), 3000},
		{"allocs", s.allocsPerPacket(), 0.0005},
	} {
		if math.Abs(c.got-c.want) > 1e-12*c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var zero MemSample
	if zero.gbps(1280) != 0 || zero.mpps() != 0 || zero.cpuNsPerPacket() != 0 || zero.allocsPerPacket() != 0 {
		t.Error("an empty sample has figures")
	}
}
