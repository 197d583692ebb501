//go:build !linux

package cpustat

// Reader reads nothing here.
type Reader struct{}

// Open is not supported here: it returns ErrUnsupported.
func Open() (*Reader, error) { return nil, ErrUnsupported }

// Read returns ErrUnsupported.
func (*Reader) Read() (Pressure, error) { return Pressure{}, ErrUnsupported }

// Close does nothing.
func (*Reader) Close() error { return nil }
