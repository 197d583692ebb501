package core

import "errors"

// Errors of the namespace modes, shared by them and by nsenv. They name
// the command, bench, as every error the harness prints does; callers
// match them with errors.Is.
var (
	// ErrNetnsUnavailable is wrapped when a namespace mode (netns,
	// loadgen, soak) cannot run here: not root, a tool missing, not
	// Linux.
	ErrNetnsUnavailable = errors.New("bench: network namespaces cannot be used here")
	// ErrNetns is wrapped by the namespace modes' failures: a namespace,
	// a build, a tunnel that does not come up, a measurement.
	ErrNetns = errors.New("bench: a run in network namespaces failed")
)
