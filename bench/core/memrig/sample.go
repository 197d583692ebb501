package memrig

import (
	"fmt"
	"time"

	"pipeguard/bench/core"
)

// Case is one in-memory measurement's setting: a point of the in-memory
// sweep, or the flood mode's one tunnel.
type Case struct {
	Direction  core.Direction `json:"direction"`
	Engine     string         `json:"engine"`
	PacketSize int            `json:"packet_size"` // inner IP packet bytes
	Peers      int            `json:"peers"`
	Procs      int            `json:"gomaxprocs"`
	Workers    int            `json:"workers"` // crypto workers per direction; 0 for the sequential engine
}

// Sample is one repeat's raw totals over its measured intervals.
type Sample struct {
	Packets    uint64  `json:"packets"` // inner packets, both directions summed
	Seconds    float64 `json:"seconds"` // wall time measured
	CPUSeconds float64 `json:"cpu_seconds"`
	Mallocs    uint64  `json:"mallocs"`
}

// Gbps is the sample's throughput of inner bytes of packetSize each.
func (s Sample) Gbps(packetSize int) float64 {
	return core.Ratio(float64(s.Packets)*float64(packetSize)*8, s.Seconds) / 1e9
}

// Mpps is the sample's packet rate, in millions a second.
func (s Sample) Mpps() float64 { return core.Ratio(float64(s.Packets), s.Seconds) / 1e6 }

// CPUNsPerPacket is the process's CPU time per packet.
func (s Sample) CPUNsPerPacket() float64 {
	return core.Ratio(s.CPUSeconds*float64(time.Second), float64(s.Packets))
}

// AllocsPerPacket is the process's heap allocations per packet.
func (s Sample) AllocsPerPacket() float64 { return core.Ratio(float64(s.Mallocs), float64(s.Packets)) }

// MedianOf is the median of f over the samples.
func MedianOf(samples []Sample, f func(Sample) float64) float64 {
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = f(s)
	}
	return core.Median(xs)
}

// String describes the case in words, for progress lines.
func (mc Case) String() string {
	s := fmt.Sprintf("%s %d B, %d peer%s", mc.Direction, mc.PacketSize, mc.Peers, core.Plural(mc.Peers))
	s += fmt.Sprintf(", GOMAXPROCS %d, %s", mc.Procs, mc.Engine)
	if mc.Workers > 0 {
		s += fmt.Sprintf(" with %d worker%s", mc.Workers, core.Plural(mc.Workers))
	}
	return s
}
