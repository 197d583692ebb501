package cpustat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"syscall"
	"time"
)

// Reader reads the machine's CPU pressure from /proc/pressure/cpu (Linux
// 4.20 and later, with PSI on), again and again without allocating: it
// keeps the file open and rereads it from the start. Make one with Open;
// one goroutine at a time.
type Reader struct {
	f   *os.File
	buf [512]byte // the file is two lines of about 70 bytes
}

// Open opens the pressure file; ErrUnsupported where there is none.
func Open() (*Reader, error) {
	f, err := os.Open("/proc/pressure/cpu")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrUnsupported
		}
		return nil, err
	}
	r := &Reader{f: f}
	if _, err := r.Read(); err != nil {
		f.Close()
		// EOPNOTSUPP: PSI compiled in but turned off (psi=0).
		if errors.Is(err, syscall.EOPNOTSUPP) {
			return nil, ErrUnsupported
		}
		return nil, err
	}
	return r, nil
}

// Read returns the pressure so far.
func (r *Reader) Read() (Pressure, error) {
	n, err := r.f.ReadAt(r.buf[:], 0)
	if err != nil && err != io.EOF {
		return Pressure{}, err
	}
	return parse(r.buf[:n])
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

var errFormat = errors.New("cpustat: /proc/pressure/cpu has no \"some ... total=N\" line")

// parse reads the "some" line: "some avg10=0.00 avg60=0.00 avg300=0.00
// total=12345", total in microseconds. It allocates nothing on success.
func parse(b []byte) (Pressure, error) {
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		b = rest
		if !bytes.HasPrefix(line, []byte("some ")) {
			continue
		}
		i := bytes.Index(line, []byte(" total="))
		if i < 0 {
			break
		}
		digits := line[i+len(" total="):]
		if len(digits) == 0 || len(digits) > 19 {
			return Pressure{}, fmt.Errorf("%w: total %q", errFormat, digits)
		}
		var us uint64
		for _, c := range digits {
			if c < '0' || c > '9' {
				return Pressure{}, fmt.Errorf("%w: total %q", errFormat, digits)
			}
			us = us*10 + uint64(c-'0')
		}
		if us > math.MaxInt64/uint64(time.Microsecond) {
			// More than a Duration holds (292 years): the file is not
			// what it should be.
			return Pressure{}, fmt.Errorf("%w: total %q", errFormat, digits)
		}
		return Pressure{Some: time.Duration(us) * time.Microsecond}, nil
	}
	return Pressure{}, errFormat
}
