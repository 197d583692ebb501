package bench

import (
	"encoding/json"
	"fmt"
	"io"

	"pipeguard/bench/core"
	"pipeguard/bench/core/cpuprof"
	"pipeguard/bench/core/memrig"
	floodmode "pipeguard/bench/flood"
	"pipeguard/bench/soak"
)

// Report is everything one run of the harness measured: what the table
// shows and the JSON file holds. Mem, Netns and Flood are nil when their
// mode did not run.
type Report struct {
	Machine  core.Machine      `json:"machine"`
	Settings core.Settings     `json:"settings"`
	Mem      *MemReport        `json:"mem,omitempty"`
	Netns    *NetnsReport      `json:"netns,omitempty"`
	Loadgen  *LoadgenReport    `json:"loadgen,omitempty"`
	Soak     *soak.Report      `json:"soak,omitempty"`
	Flood    *floodmode.Report `json:"flood,omitempty"`
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

// NetnsReport holds the namespace mode's figures: real TUN devices in two
// network namespaces joined by a veth pair, the tunnel under test at both
// ends, traffic from iperf3 and ping. Every implementation ran in the same
// namespaces at the same MTU with the same iperf3 and ping settings.
type NetnsReport struct {
	MTU        int `json:"mtu"`         // of every tunnel interface
	TCPSeconds int `json:"tcp_seconds"` // iperf3 -t of each TCP run
	// PingIntervalMs is ping's -i; PingIdleCount the idle series' -c.
	PingIntervalMs float64 `json:"ping_interval_ms"`
	PingIdleCount  int     `json:"ping_idle_count"`
	// WireguardGoVersion is golang.zx2c4.com/wireguard's module version
	// in the wgpeer binary measured; Iperf3Version is iperf3's banner.
	WireguardGoVersion string `json:"wireguard_go_version"`
	Iperf3Version      string `json:"iperf3_version"`
	// PipeGuardRevision is the git commit the client was built from (its
	// build info), and whether the tree had uncommitted changes.
	PipeGuardRevision string     `json:"pipeguard_revision,omitempty"`
	Runs              []NetnsRun `json:"runs"`
	// Warnings are things that went wrong without spoiling a figure, such
	// as a tunnel that did not exit 0 on SIGTERM.
	Warnings []string `json:"warnings,omitempty"`
}

// NetnsRun is one implementation (and engine) measured end to end: a
// tunnel process in each namespace, figures as medians over the repeats.
type NetnsRun struct {
	Impl   string `json:"impl"`             // ImplPipeGuard or ImplWireguardGo
	Engine string `json:"engine,omitempty"` // PipeGuard's engine
	// Args are the tunnel program's arguments at one end (the other
	// differs only in its config file and interface name).
	Args []string `json:"args"`
	// TCP is iperf3's throughput, per direction and stream count.
	TCP []TCPResult `json:"tcp"`
	// PingIdle is a series with no other traffic; PingLoaded one taken
	// during the outbound TCP run with the most streams. Each pools the
	// replies of every repeat.
	PingIdle   core.RTT `json:"ping_idle"`
	PingLoaded core.RTT `json:"ping_loaded"`
	// CPUPercent is the tunnel processes' CPU use (both ends, user and
	// system time from /proc/<pid>/stat, 100 = one core) over all the TCP
	// runs; PeakRSSBytes the larger of the two ends' peak resident set
	// (VmHWM), the largest over the repeats.
	CPUPercent   float64 `json:"cpu_percent"`
	PeakRSSBytes uint64  `json:"peak_rss_bytes"`
}

// TCPResult is one iperf3 configuration's figures, medians over the
// repeats in Samples, and its ratios to the same configuration over
// wireguard-go and over the sequential engine (0 when not measured).
type TCPResult struct {
	Direction     core.Direction `json:"direction"` // Outbound: the client's namespace sends; Inbound: it receives (-R)
	Streams       int            `json:"streams"`
	Gbps          float64        `json:"gbit_per_s"` // received, as iperf3 reports
	Retransmits   int64          `json:"retransmits"`
	CPUPercent    float64        `json:"cpu_percent"` // both tunnel processes, 100 = one core
	VsWireguardGo float64        `json:"vs_wireguard_go"`
	VsSequential  float64        `json:"vs_sequential"`
	Samples       []TCPSample    `json:"samples"`
}

// TCPSample is one iperf3 run.
type TCPSample struct {
	Gbps        float64 `json:"gbit_per_s"`
	Retransmits int64   `json:"retransmits"`
	Seconds     float64 `json:"seconds"`      // iperf3's measured time
	WallSeconds float64 `json:"wall_seconds"` // the client's whole run, over which CPU was read
	CPUSeconds  float64 `json:"cpu_seconds"`  // both tunnel processes, user and system
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
