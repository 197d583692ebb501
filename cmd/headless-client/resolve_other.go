//go:build !linux

package main

import "net"

// markedResolver is the system's resolver: firewall marks are Linux's,
// and the client is unsupported elsewhere.
func markedResolver(uint32) *net.Resolver { return net.DefaultResolver }
