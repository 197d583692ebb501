package memrig

import (
	"math"
	"testing"
)

func TestSampleFigures(t *testing.T) {
	// 1e6 packets of 1250 bytes in 2 s: 5 Gbit/s, 0.5 Mpps; 3 s of CPU is
	// 3000 ns a packet; 500 allocations are 0.0005 a packet.
	s := Sample{Packets: 1e6, Seconds: 2, CPUSeconds: 3, Mallocs: 500}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"gbps", s.Gbps(1250), 5},
		{"mpps", s.Mpps(), 0.5},
		{"cpu", s.CPUNsPerPacket(), 3000},
		{"allocs", s.AllocsPerPacket(), 0.0005},
	} {
		if math.Abs(c.got-c.want) > 1e-12*c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var zero Sample
	if zero.Gbps(1280) != 0 || zero.Mpps() != 0 || zero.CPUNsPerPacket() != 0 || zero.AllocsPerPacket() != 0 {
		t.Error("an empty sample has figures")
	}
}
