package loadgen

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/wire"
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
// 0) and sets GOMAXPROCS to 1, and returns what undoes both. The whole
// process, not one locked thread: a goroutine locked to a thread costs
// two thread switches each time it blocks and wakes, which at a few
// hundred thousand packets a second cost the generator more than its
// sends. A thread the runtime starts meanwhile inherits its parent's
// pinning; the second pass catches one started from a thread the first
// had not reached yet. GOMAXPROCS is set, not left to the runtime (which
// follows the affinity mask on its own, but a second or so late): one P
// on one CPU, so the sender and the receiver never switch threads, and
// all of them back for the sealing after it. With one P, a system call
// longer than a sysmon tick (20 µs) has its P handed to another thread,
// so the generator's frequent calls are raw ones (rawudp.Conn, procFile).
func pinProcess(cpu int) (unpin func(), err error) {
	if cpu < 0 {
		return func() {}, nil
	}
	procs := runtime.GOMAXPROCS(1)
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return nil, fmt.Errorf("%w: sched_getaffinity: %v", core.ErrNetns, err)
	}
	one.Set(cpu)
	apply := func(set *unix.CPUSet) error {
		for range 2 {
			ents, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return fmt.Errorf("%w: %v", core.ErrNetns, err)
			}
			for _, e := range ents {
				tid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				// A thread that has just exited (ESRCH) needs nothing.
				if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("%w: pinning thread %d to CPU %d: %v", core.ErrNetns, tid, cpu, err)
				}
			}
		}
		return nil
	}
	if err := apply(&one); err != nil {
		apply(&all)
		runtime.GOMAXPROCS(procs)
		return nil, err
	}
	return func() {
		apply(&all)
		runtime.GOMAXPROCS(procs)
	}, nil
}

// procFile reads a /proc file into a buffer it keeps, from an fd it keeps
// open, so that the generator's frequent looks neither allocate nor look
// the path up again: a read at offset 0 makes the kernel generate the file
// afresh. Close it: an open /proc/<pid>/net file holds the namespace.
// Used by one goroutine.
type procFile struct {
	path string
	fd   int // -1 until the first read
	buf  []byte
}

func newProcFile(path string) *procFile {
	return &procFile{path: path, fd: -1, buf: make([]byte, 8192)}
}

func (f *procFile) read() ([]byte, error) {
	if f.fd < 0 {
		fd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", core.ErrNetns, f.path, err)
		}
		f.fd = fd
	}
	n := 0
	for {
		if n == len(f.buf) {
			f.buf = append(f.buf, make([]byte, len(f.buf))...)
		}
		// A raw call: the kernel takes tens of microseconds to generate
		// the file, long enough for the runtime to hand the P of a
		// normal call to another thread (pinProcess).
		r, _, errno := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(f.fd), uintptr(unsafe.Pointer(&f.buf[n])), uintptr(len(f.buf)-n), uintptr(n), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return nil, fmt.Errorf("%w: %s: %v", core.ErrNetns, f.path, errno)
		}
		k := int(r)
		if k == 0 {
			return f.buf[:n], nil
		}
		n += k
	}
}

// close closes the fd, if open.
func (f *procFile) close() {
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
}

// mapRing returns n zeroed wire.Packets in memory of their own, mapped
// apart from the Go heap (which would keep gigabytes after the run, and
// count them in its next GC goal), in huge pages where the kernel gives
// them (fewer faults while sealing, fewer TLB misses while sending); free
// unmaps it. wire.Packet holds no pointers, so the GC need not see it.
func mapRing(n int) (_ []wire.Packet, free func() error, err error) {
	if n <= 0 {
		return nil, func() error { return nil }, nil
	}
	mem, err := unix.Mmap(-1, 0, n*int(unsafe.Sizeof(wire.Packet{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, err
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // advice only: THP may be off
	// Fault it all in now (Linux 5.14), so that the first cell's sealing
	// time is the sealing's; an older kernel faults it in while sealing.
	// On every CPU: in a VM, memory the guest touches for the first time
	// costs the host a fault too, a few hundred MB a second per CPU.
	const piece = 64 << 20 // a multiple of the huge page size
	var wg sync.WaitGroup
	next := make(chan []byte)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for b := range next {
				_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
			}
		})
	}
	for off := 0; off < len(mem); off += piece {
		next <- mem[off:min(off+piece, len(mem))]
	}
	close(next)
	wg.Wait()
	return unsafe.Slice((*wire.Packet)(unsafe.Pointer(&mem[0])), n), func() error { return unix.Munmap(mem) }, nil
}

// memAvailable is MemAvailable from /proc/meminfo in bytes, 0 when
// unknown.
func memAvailable() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	n, err := nsenv.ParseStatusKB(b, "MemAvailable")
	if err != nil {
		return 0
	}
	return n
}
