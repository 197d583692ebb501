// Package cpusched puts the tunnel's threads in the kernel's real-time
// scheduling class, so that a packet does not wait for the CPU behind the
// applications whose traffic it carries.
//
// Why: with the CPU busy (a bulk transfer through the tunnel keeps it so
// on a small machine), every hop through a userspace tunnel waits until
// the kernel runs the tunnel's thread again, and the fair class lets the
// sender and receiver of the transfer run first for up to a time slice:
// on two cores shared by both ends and iperf3, a ping's round trip went
// from 3.7-8.0 ms (p50) to 0.37-0.53 ms in the real-time class
// (docs/ARCHITECTURE.md, "Who gets the CPU"). Kernel WireGuard's receive
// and transmit paths run in softirq, ahead of every task (its encryption
// and decryption run in kworkers, which are fair-class tasks). SCHED_RR
// at the lowest real-time priority gives the whole userspace tunnel that
// standing: it runs as soon as a packet wakes it, ahead of every normal
// task, and behind every real-time one (audio, the kernel's own threads
// of higher priority).
//
// What bounds it: the kernel's real-time throttling
// (/proc/sys/kernel/sched_rt_runtime_us, 95% of each second by default)
// leaves normal tasks a share even if the tunnel never sleeps, and the
// tunnel only runs while it has packets to move.
//
// New threads inherit their creator's policy, so once every thread of the
// process is moved, the threads the Go runtime starts later are too. The
// programs the client runs (resolvconf) inherit it as well; they are
// short.
package cpusched

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Priority is the real-time priority the tunnel takes: the lowest, so
// that every other real-time thread still comes first.
const Priority = 1

// ErrNotPermitted is wrapped when the process may not take real-time
// scheduling: it needs CAP_SYS_NICE, or an RLIMIT_RTPRIO of at least
// Priority (systemd's LimitRTPRIO=), and no seccomp filter that refuses
// it (RestrictRealtime=). A unit gives it with CPUSchedulingPolicy=rr
// instead, which systemd applies before the filter.
var ErrNotPermitted = errors.New("cpusched: real-time scheduling not permitted")

// maxPasses bounds the passes over the process's threads: a pass finds the
// threads started during the one before, and the runtime starts few.
const maxPasses = 8

// Realtime moves every thread of this process to SCHED_RR at Priority. It
// reports whether the process already ran so (a systemd unit's
// CPUSchedulingPolicy=rr), in which case it changes nothing.
func Realtime() (already bool, err error) {
	if rt, err := IsRealtime(0); err == nil && rt {
		return true, nil
	}
	attr := unix.SchedAttr{Policy: unix.SCHED_RR, Priority: Priority}
	for range maxPasses {
		tids, err := threads()
		if err != nil {
			return false, err
		}
		moved := 0
		for _, tid := range tids {
			rt, err := IsRealtime(tid)
			if errors.Is(err, unix.ESRCH) {
				continue // the thread exited
			}
			if err != nil {
				return false, fmt.Errorf("cpusched: thread %d: %w", tid, err)
			}
			if rt {
				continue
			}
			err = unix.SchedSetAttr(tid, &attr, 0)
			switch {
			case errors.Is(err, unix.ESRCH):
				continue
			case errors.Is(err, unix.EPERM):
				return false, fmt.Errorf("%w (%v)", ErrNotPermitted, err)
			case err != nil:
				return false, fmt.Errorf("cpusched: thread %d: %w", tid, err)
			}
			moved++
		}
		if moved == 0 {
			return false, nil
		}
	}
	return false, errors.New("cpusched: threads kept starting with the fair policy")
}

// IsRealtime reports whether thread tid (0: the calling thread) runs
// under a real-time policy.
func IsRealtime(tid int) (bool, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return false, err
	}
	return a.Policy == unix.SCHED_RR || a.Policy == unix.SCHED_FIFO, nil
}

// threads lists this process's thread ids.
func threads() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("cpusched: listing threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
