//go:build !linux

package main

import "errors"

// otherOwner finds no other owner outside Linux, where the client is
// unsupported.
func otherOwner(string) (uid, gid int, ok bool) { return 0, 0, false }

// asOwner is unsupported outside Linux.
func asOwner(*runEnv, int, int, ...string) error {
	return errors.New("headless-client: supported on Linux only")
}
