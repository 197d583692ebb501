package netns

import (
	"pipeguard/bench/core"
)

// Report holds the namespace mode's figures: real TUN devices in two
// network namespaces joined by a veth pair, the tunnel under test at both
// ends, traffic from iperf3 and ping. Every implementation ran in the same
// namespaces at the same MTU with the same iperf3 and ping settings.
type Report struct {
	MTU        int `json:"mtu"`         // of every tunnel interface
	TCPSeconds int `json:"tcp_seconds"` // iperf3 -t of each TCP run
	// PingIntervalMs is ping's -i; PingIdleCount the idle series' -c.
	PingIntervalMs float64 `json:"ping_interval_ms"`
	PingIdleCount  int     `json:"ping_idle_count"`
	// WireguardGoVersion is golang.zx2c4.com/wireguard's module version
	// in the wgpeer binary measured; Iperf3Version is iperf3's banner.
	WireguardGoVersion string `json:"wireguard_go_version"`
	Iperf3Version      string `json:"iperf3_version"`
	// CongestionControl is the TCP congestion control of iperf3's
	// streams.
	CongestionControl string `json:"tcp_congestion_control,omitempty"`
	// PipeGuardRevision is the git commit the client was built from (its
	// build info), and whether the tree had uncommitted changes.
	PipeGuardRevision string `json:"pipeguard_revision,omitempty"`
	Runs              []Run  `json:"runs"`
	// Warnings are things that went wrong without spoiling a figure, such
	// as a tunnel that did not exit 0 on SIGTERM.
	Warnings []string `json:"warnings,omitempty"`
}

// Run is one implementation (and engine) measured end to end: a
// tunnel process in each namespace, figures as medians over the repeats.
type Run struct {
	Impl   string `json:"impl"`             // ImplPipeGuard or ImplWireguardGo
	Engine string `json:"engine,omitempty"` // PipeGuard's engine
	// Unmanaged is PipeGuard with --queue-management off.
	Unmanaged bool `json:"queue_management_off,omitempty"`
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
	// Latency is the latency-under-load table's rows: idle, then the TCP
	// runs with the most streams outbound, inbound and both ways at once,
	// each with the ping and probe series taken in their middle.
	Latency []LatencyRow `json:"latency,omitempty"`
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
