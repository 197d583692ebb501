package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The loadgen mode's dealings with the operating system: which CPU the
// generator gets, pinning the harness, and reading /proc without
// allocating. (Sockets in a namespace come from inNetns.)

// genCPU is the CPU the generator's threads are pinned to: the last one
// the harness may use, so that the tunnel under test has the others to
// itself as far as the scheduler lets it; -1 when there is only one.
func genCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil || set.Count() < 2 {
		return -1
	}
	for c := len(set)*64 - 1; c >= 0; c-- {
		if set.IsSet(c) {
			return c
		}
	}
	return -1
}

// pinProcess pins every thread of the harness to cpu (nothing when cpu <
// 0) and returns what undoes it. The whole process, not one locked
// thread: a goroutine locked to a thread costs two thread switches each
// time it blocks and wakes, which at a few hundred thousand packets a
// second cost the generator more than its sends. A thread the runtime
// starts meanwhile inherits its parent's pinning; the second pass catches
// one started from a thread the first had not reached yet.
func pinProcess(cpu int) (unpin func(), err error) {
	if cpu < 0 {
		return func() {}, nil
	}
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return nil, fmt.Errorf("%w: sched_getaffinity: %v", ErrNetns, err)
	}
	one.Set(cpu)
	apply := func(set *unix.CPUSet) error {
		for range 2 {
			ents, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return fmt.Errorf("%w: %v", ErrNetns, err)
			}
			for _, e := range ents {
				tid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				// A thread that has just exited (ESRCH) needs nothing.
				if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("%w: pinning thread %d to CPU %d: %v", ErrNetns, tid, cpu, err)
				}
			}
		}
		return nil
	}
	if err := apply(&one); err != nil {
		apply(&all)
		return nil, err
	}
	return func() { apply(&all) }, nil
}

// procFile reads a /proc file into a buffer it keeps, so that the
// generator's frequent looks do not allocate. Used by one goroutine.
type procFile struct {
	path string
	buf  []byte
}

func newProcFile(path string) *procFile { return &procFile{path: path, buf: make([]byte, 8192)} }

func (f *procFile) read() ([]byte, error) {
	fd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNetns, f.path, err)
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(f.buf) {
			f.buf = append(f.buf, make([]byte, len(f.buf))...)
		}
		k, err := unix.Read(fd, f.buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNetns, f.path, err)
		}
		if k == 0 {
			return f.buf[:n], nil
		}
		n += k
	}
}
