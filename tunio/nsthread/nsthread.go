// Package nsthread runs Go code on an OS thread that has joined a named
// Linux network namespace (one made by `ip netns add`), so that the
// sockets, devices and netlink calls it makes are the namespace's, while
// the rest of the process stays where it is. The headless client's demo,
// the end-to-end tests (through cmd/internal/netns) and the benchmark
// harness all enter namespaces this way; it lives here, under tunio,
// because package bench may not import cmd/internal.
package nsthread
