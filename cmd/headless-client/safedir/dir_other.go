//go:build !linux

package safedir

import "os"

// Open is unsupported outside Linux, where PipeGuard's client does not
// run.
func Open(path string) (*Dir, error) { return nil, ErrUnsupported }

// MkdirAll is unsupported outside Linux.
func MkdirAll(path string, perm os.FileMode) (*Dir, error) { return nil, ErrUnsupported }

// Check is unsupported outside Linux.
func Check(path string) error { return ErrUnsupported }

// Close is unsupported outside Linux.
func (d *Dir) Close() error { return ErrUnsupported }

// Sub is unsupported outside Linux.
func (d *Dir) Sub(name string, perm os.FileMode) (*Dir, error) { return nil, ErrUnsupported }

// OpenFile is unsupported outside Linux.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return nil, ErrUnsupported
}

// ReadFile is unsupported outside Linux.
func (d *Dir) ReadFile(name string, limit int64) ([]byte, error) { return nil, ErrUnsupported }

// WriteFile is unsupported outside Linux.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode) error { return ErrUnsupported }

// Remove is unsupported outside Linux.
func (d *Dir) Remove(name string) error { return ErrUnsupported }

// Rename is unsupported outside Linux.
func (d *Dir) Rename(from, to string) error { return ErrUnsupported }

// Names is unsupported outside Linux.
func (d *Dir) Names() ([]string, error) { return nil, ErrUnsupported }
