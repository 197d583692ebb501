//go:build !linux

package main

import "io"

// isTerminal is unsupported outside Linux: logs are plain, never coloured.
func isTerminal(io.Writer) bool { return false }
