package bench

import (
	"errors"

	"pipeguard/bench/core"
)

// Errors. Each names the command, bench, and callers match them with
// errors.Is.

// ErrConfig is wrapped by every invalid setting.
var ErrConfig = errors.New("bench: invalid config")

// ErrNetnsUnavailable is wrapped when the netns, loadgen or soak mode
// cannot run here: not root, a tool missing, not Linux.
var ErrNetnsUnavailable = core.ErrNetnsUnavailable

// ErrNetns is wrapped by the namespace modes' failures: a namespace, a
// build, a tunnel that does not come up, a measurement.
var ErrNetns = core.ErrNetns

// ErrSoak is wrapped when a soak broke its bounds or a change to the
// tunnels did not apply; the report says which.
var ErrSoak = errors.New("bench: soak failed")

// ErrReport is wrapped when a JSON report cannot be read.
var ErrReport = errors.New("bench: bad report")
