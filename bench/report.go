package bench

import (
	"encoding/json"
	"fmt"
	"io"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/core/memrig"
	"pipeguard/bench/flood"
	"pipeguard/bench/loadgen"
	"pipeguard/bench/netns"
	"pipeguard/bench/soak"
)

// Report is everything one run of the harness measured: what the table
// shows and the JSON file holds. Mem, Netns and Flood are nil when their
// mode did not run.
type Report struct {
	Machine  core.Machine    `json:"machine"`
	Settings core.Settings   `json:"settings"`
	Mem      *MemReport      `json:"mem,omitempty"`
	Netns    *netns.Report   `json:"netns,omitempty"`
	Loadgen  *loadgen.Report `json:"loadgen,omitempty"`
	Soak     *soak.Report    `json:"soak,omitempty"`
	Flood    *flood.Report   `json:"flood,omitempty"`
}

// MemReport holds the in-memory mode's figures.
type MemReport struct {
	Results []MemResult `json:"results"`
	AEAD    []AEADLimit `json:"aead_limit"`
	// StageCPU is the share of CPU per pipeline stage, from a profile of
	// one pipeline measurement; nil when it was not taken.
	StageCPU *StageCPU `json:"stage_cpu,omitempty"`
}

// MemResult is one case's figures: medians over the repeats in Samples.
// Throughput counts inner bytes (what the applications send); Both counts
// the two directions together.
type MemResult struct {
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
	Gbps       float64         `json:"gbit_per_s"` // inner bytes, as MemResult counts them
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

// WriteJSON writes the report, indented, to w.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJSONFile writes the report to the file at path.
func (r *Report) WriteJSONFile(path string) error {
	return core.WriteFile(path, r.WriteJSON)
}

// ReadReport decodes a report written by WriteJSON.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReport, err)
	}
	return &r, nil
}

// Direction is which way traffic crosses the tunnel under test.
type Direction = core.Direction

// Directions of the in-memory and flood modes.
const (
	Inbound  = core.Inbound  // UDP in, decrypt, TUN out
	Outbound = core.Outbound // TUN in, encrypt, UDP out
	Both     = core.Both     // the two at once, the same count each way
)
