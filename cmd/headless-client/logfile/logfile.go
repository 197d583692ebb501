// Package logfile is an io.Writer that appends log lines to a file and
// rotates it by size: name.log becomes name.log.1, name.log.1 becomes
// name.log.2, and so on, and the oldest beyond the kept count is deleted.
// Size-based rotation bounds the disk a busy or misbehaving tunnel can
// fill, whatever the traffic, without needing logrotate.
//
// The directory must be one no other user can change (package safedir),
// and files in it are opened and renamed through its descriptor, never
// through a link: the client may run as root, and a link planted in a log
// directory would otherwise have root append to, or rotate away, any
// file.
package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"pipeguard/cmd/headless-client/safedir"
)

// ErrConfig reports unusable settings.
var ErrConfig = errors.New("logfile: invalid settings")

// Defaults for the client: ten files of 10 MiB keep days of info-level
// logs of a busy tunnel in 110 MiB at most.
const (
	DefaultMaxSize = 10 << 20
	DefaultKeep    = 10
)

// Writer writes to the current log file and rotates it. Its methods are
// safe for concurrent use; each Write lands whole in one file (a log
// record is never split across a rotation). The zero value is not
// usable; make one with Open.
//
// A rotation that fails (the directory made read-only or immutable for a
// while, the disk full) does not stop the logging: the Writer goes on
// appending to the current file, past its size limit, tries again after
// each further eighth of the limit, and reopens the file if it had to
// let go of it.
type Writer struct {
	dir     *safedir.Dir
	name    string // the current file's name in dir: name.log
	path    string // its path, for messages
	maxSize int64
	keep    int

	// OnError, if set, is called when rotating or reopening the file
	// first fails, with the error, and with nil once it works again. It
	// is called without the Writer's lock held. Set it before the first
	// Write.
	OnError func(error)

	mu      sync.Mutex // guards the fields below
	f       *os.File   // nil after Close, or while the file cannot be opened
	size    int64
	closed  bool
	failing bool  // the last rotation or reopening failed
	retryAt int64 // while failing: the size at which to rotate again
}

// Open opens (creating, mode 0640) dir/name.log for appending, creating
// dir (mode 0750) if needed. A file is rotated before a write would take
// it past maxSize bytes; keep rotated files are kept.
func Open(dir, name string, maxSize int64, keep int) (*Writer, error) {
	if maxSize <= 0 || keep < 1 || name == "" || filepath.Base(name) != name {
		return nil, fmt.Errorf("%w: name %q, max size %d, keep %d", ErrConfig, name, maxSize, keep)
	}
	d, err := safedir.MkdirAll(dir, 0o750)
	if err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	w := &Writer{dir: d, name: name + ".log", path: filepath.Join(d.Path(), name+".log"), maxSize: maxSize, keep: keep}
	if err := w.openLocked(); err != nil {
		d.Close()
		return nil, err
	}
	return w, nil
}

// Path is the current log file's path.
func (w *Writer) Path() string { return w.path }

func (w *Writer) openLocked() error {
	f, err := w.dir.OpenFile(w.name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logfile: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first if p would take the file past the
// limit (unless the file is empty: a record larger than the limit still
// gets written, alone in its file).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	n, err, report, changed := w.writeLocked(p)
	onError := w.OnError
	w.mu.Unlock()
	if changed && onError != nil {
		onError(report)
	}
	return n, err
}

// writeLocked is Write with w.mu held. changed says whether the writer
// started or stopped failing, report being the error (nil: recovered).
func (w *Writer) writeLocked(p []byte) (n int, err, report error, changed bool) {
	if w.closed {
		return 0, os.ErrClosed, nil, false
	}
	if w.f == nil {
		// A failed rotation left no file open: try again.
		if err := w.openLocked(); err != nil {
			report, changed = w.failedLocked(err)
			return 0, err, report, changed
		}
	}
	if w.size > 0 && w.size+int64(len(p)) > w.maxSize && w.size >= w.retryAt {
		if err := w.rotateLocked(); err != nil {
			report, changed = w.failedLocked(err)
			w.retryAt = w.size + max(w.maxSize/8, 1)
			if w.f == nil {
				if oerr := w.openLocked(); oerr != nil {
					return 0, oerr, report, changed
				}
			}
		} else if w.failing {
			w.failing, w.retryAt = false, 0
			report, changed = nil, true
		}
	} else if w.failing && w.f != nil && w.retryAt == 0 {
		// Reopened after an open failure, with nothing to rotate.
		w.failing = false
		report, changed = nil, true
	}
	n, err = w.f.Write(p)
	w.size += int64(n)
	return n, err, report, changed
}

// failedLocked records a failure and reports whether it starts a run of
// them.
func (w *Writer) failedLocked(err error) (error, bool) {
	if w.failing {
		return err, false
	}
	w.failing = true
	return err, true
}

// rotateLocked shifts name.log.i to name.log.i+1, dropping the oldest,
// and starts a new name.log.
func (w *Writer) rotateLocked() error {
	err := w.f.Close()
	w.f = nil // reopened by the caller if rotation fails
	if err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	rotated := func(i int) string { return w.name + "." + strconv.Itoa(i) }
	if err := w.dir.Remove(rotated(w.keep)); err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	for i := w.keep - 1; i >= 1; i-- {
		if err := w.dir.Rename(rotated(i), rotated(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logfile: %w", err)
		}
	}
	if err := w.dir.Rename(w.name, rotated(1)); err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	return w.openLocked()
}

// Close closes the current file and the directory. Writes after Close
// fail; a second Close does nothing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	derr := w.dir.Close()
	if w.f == nil {
		return derr
	}
	err := w.f.Close()
	w.f = nil
	return errors.Join(err, derr)
}
