//go:build !linux

package main

import "errors"

// Run is unsupported outside Linux: the demo needs network namespaces.
func (c *demoCmd) Run(env *runEnv) error {
	return errors.New("headless-client: the demo needs Linux network namespaces; unsupported on this platform")
}
