package netns

import "pipeguard/tunio/nsthread"

// Do runs fn on an OS thread that has joined the namespace, for code that
// must make sockets, devices or netlink calls in it from this process
// (nsthread.Do says how the thread is kept from leaking into the
// scheduler).
func (ns *NS) Do(fn func() error) error { return nsthread.Do(ns.Name, fn) }
