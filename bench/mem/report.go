package mem

import (
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/core/memrig"
)

// Report holds the in-memory mode's figures.
type Report struct {
	Results []Result    `json:"results"`
	AEAD    []AEADLimit `json:"aead_limit"`
	// StageCPU is the share of CPU per pipeline stage, from a profile of
	// one pipeline measurement; nil when it was not taken.
	StageCPU *StageCPU `json:"stage_cpu,omitempty"`
}

// Result is one case's figures: medians over the repeats in Samples.
// Throughput counts inner bytes (what the applications send); Both counts
// the two directions together.
type Result struct {
	memrig.Case
	Gbps            float64 `json:"gbit_per_s"`
	Mpps            float64 `json:"mpps"`
	CPUNsPerPacket  float64 `json:"cpu_ns_per_packet"` // process CPU (user+system) per packet
	AllocsPerPacket float64 `json:"allocs_per_packet"` // heap allocations per packet, whole process
	// VsSequential is Gbps over the sequential engine's Gbps in the same
	// direction, size, peers and GOMAXPROCS; 0 when there is none.
	VsSequential float64 `json:"vs_sequential"`
	// AEADGbps is the ChaCha20-Poly1305 limit at this size and
	// GOMAXPROCS, and OfAEAD is Gbps / AEADGbps.
	AEADGbps float64         `json:"aead_gbit_per_s"`
	OfAEAD   float64         `json:"of_aead"`
	Samples  []memrig.Sample `json:"samples"`
}

// AEADLimit is ChaCha20-Poly1305 opening messages of one inner packet
// size (padded as WireGuard pads) on Procs goroutines in parallel. Each
// sample is the best of three short runs: the limit is a ceiling.
type AEADLimit struct {
	PacketSize int             `json:"packet_size"`
	Procs      int             `json:"gomaxprocs"`
	Gbps       float64         `json:"gbit_per_s"` // inner bytes, as Result counts them
	Mpps       float64         `json:"mpps"`
	Samples    []memrig.Sample `json:"samples"`
}

// StageCPU is where the CPU time of one pipeline measurement went, from a
// CPU profile grouped by the "stage" pprof label the engine sets.
type StageCPU struct {
	Case        memrig.Case          `json:"case"`
	WallSeconds float64              `json:"wall_seconds"` // measured time profiled
	Samples     int64                `json:"profile_samples"`
	CPUSeconds  float64              `json:"cpu_seconds"`
	Stages      []cpuprof.StageShare `json:"stages"` // largest first; NoStage last
}
