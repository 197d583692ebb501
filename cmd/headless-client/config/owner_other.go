//go:build !linux

package config

import (
	"fmt"
	"os"
)

// fileOwner is unsupported outside Linux: Load then refuses every file,
// since it cannot prove the private key is the running user's alone.
func fileOwner(fi os.FileInfo) (int, error) {
	return 0, fmt.Errorf("%w: checking the owner of %s is unsupported on this platform", ErrOwner, fi.Name())
}

// checkDir checks nothing outside Linux, where the client does not run
// (see package safedir).
func checkDir(path string) error { return nil }
