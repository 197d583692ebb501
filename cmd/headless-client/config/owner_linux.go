package config

import (
	"fmt"
	"os"
	"syscall"
)

// fileOwner returns the uid that owns the file.
func fileOwner(fi os.FileInfo) (int, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%w: cannot tell the owner of %s", ErrOwner, fi.Name())
	}
	return int(st.Uid), nil
}
