package bench

import "errors"

// Errors. Each names the package, and callers match them with errors.Is.
var (
	// ErrConfig is wrapped by every invalid setting.
	ErrConfig = errors.New("bench: invalid config")
	// ErrNetnsUnavailable is wrapped when the netns or loadgen mode cannot
	// run here: not root, a tool missing, not Linux.
	ErrNetnsUnavailable = errors.New("bench: network namespaces cannot be used here")
	// ErrNetns is wrapped by the netns and loadgen modes' failures: a
	// namespace, a build, a tunnel that does not come up, a measurement.
	ErrNetns = errors.New("bench: netns mode failed")
	// ErrSoak is wrapped when a soak broke its bounds or a change to the
	// tunnels did not apply; the report says which.
	ErrSoak = errors.New("bench: soak failed")
	// ErrReport is wrapped when a JSON report cannot be read.
	ErrReport = errors.New("bench: bad report")
	// ErrProfile is wrapped when a CPU profile cannot be taken or read.
	ErrProfile = errors.New("bench: bad profile")
	// ErrIperf is wrapped when iperf3's JSON output cannot be read.
	ErrIperf = errors.New("bench: bad iperf3 output")
	// ErrPing is wrapped when ping's output cannot be read.
	ErrPing = errors.New("bench: bad ping output")
)

// errAEAD means ChaCha20-Poly1305 failed to open what it sealed: a broken
// build, never a measurement.
var errAEAD = errors.New("bench: AEAD limit: open failed")
