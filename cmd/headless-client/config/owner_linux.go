package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"pipeguard/cmd/headless-client/safedir"
)

// fileOwner returns the uid that owns the file.
func fileOwner(fi os.FileInfo) (int, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%w: cannot tell the owner of %s", ErrOwner, fi.Name())
	}
	return int(st.Uid), nil
}

// checkDir refuses a config whose directory, or whose target's directory
// if it is a link, belongs to another user than the euid and root, or is
// writable by its group or others (package safedir's rule). Under the
// units, /etc/pipeguard is the pipeguard user's: a root run keeps its
// configs elsewhere, as in /etc/wireguard.
func checkDir(path string) error {
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		dirs = append(dirs, filepath.Dir(real))
	}
	for _, d := range dirs {
		if err := safedir.Check(d); err != nil {
			if errors.Is(err, safedir.ErrUntrusted) {
				return fmt.Errorf("%w: %s: %w (keep a config where only its owner, or root, can change it)", ErrDirectory, path, err)
			}
			return fmt.Errorf("config: %s: %w", path, err)
		}
	}
	return nil
}
