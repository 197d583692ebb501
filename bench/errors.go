package bench

import "errors"

// Errors. Each names the package, and callers match them with errors.Is.
var (
	// ErrConfig is wrapped by every invalid setting.
	ErrConfig = errors.New("bench: invalid config")
	// ErrNetnsNotImplemented is what the netns mode returns for now.
	ErrNetnsNotImplemented = errors.New("bench: netns mode is not implemented yet")
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
