package core

import (
	"io"
	"os"
	"runtime"
	"time"
)

// Machine says where and when a report was measured.
type Machine struct {
	CPUModel    string   `json:"cpu_model"`
	Cores       int      `json:"cores"` // runtime.NumCPU
	GoVersion   string   `json:"go_version"`
	OS          string   `json:"os"`
	Arch        string   `json:"arch"`
	Kernel      string   `json:"kernel"`
	Date        string   `json:"date"` // RFC 3339, UTC
	CommandLine []string `json:"command_line"`
	// LoadAverage is /proc/loadavg's first three fields at the start: on
	// a shared machine, how busy it was.
	LoadAverage string `json:"load_average,omitempty"`
}

// Settings are the knobs the run used, after defaults.
type Settings struct {
	Mode            string  `json:"mode"`
	Quick           bool    `json:"quick"`
	DurationSeconds float64 `json:"duration_seconds"` // per measurement
	Repeat          int     `json:"repeat"`           // figures are medians of this many
	Packets         int     `json:"packets,omitempty"`
}

// Direction is which way traffic crosses the tunnel under test.
type Direction string

// Directions. The in-memory and flood modes measure all three; the
// namespace modes name their runs by the first two.
const (
	Inbound  Direction = "inbound"  // UDP in, decrypt, TUN out
	Outbound Direction = "outbound" // TUN in, encrypt, UDP out
	Both     Direction = "both"     // the two at once, the same count each way
)

// Implementations the namespace modes compare.
const (
	ImplPipeGuard   = "pipeguard"
	ImplWireguardGo = "wireguard-go"
)

// RTT is a ping series' round-trip times, in milliseconds.
type RTT struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

// WriteFile creates path and lets write fill it; a failed write or close
// is an error.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// DescribeMachine says what this machine is and how busy it is now, for
// a report of a run started with cmdline.
func DescribeMachine(cmdline []string) Machine {
	return Machine{
		CPUModel:    CPUModel(),
		Cores:       runtime.NumCPU(),
		GoVersion:   runtime.Version(),
		OS:          runtime.GOOS,
		Arch:        runtime.GOARCH,
		Kernel:      Kernel(),
		Date:        time.Now().UTC().Format(time.RFC3339),
		CommandLine: cmdline,
		LoadAverage: LoadAverage(),
	}
}
