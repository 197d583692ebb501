package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nsProc is a long-running process of the netns mode (a tunnel, the
// iperf3 server) inside a namespace, started through `ip netns exec`,
// which execs the program in place: the pid is the program's own.
//
// It runs in its own process group, so a Ctrl-C on the terminal reaches
// only the harness, which stops it in order; and with a parent-death
// signal, so it dies with a harness that is killed outright.
type nsProc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer // stdout and stderr, the end of them
	done chan struct{}
	err  error // Wait's result, set before done closes
}

func startProc(ns, name string, env []string, bin string, args ...string) (*nsProc, error) {
	p := &nsProc{name: name, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %v", ErrNetns, name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *nsProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *nsProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace for the exit, then kills. It
// returns the exit status (-1 when killed or never started cleanly).
func (p *nsProc) stop(grace time.Duration) int {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
			return -1
		}
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// tailBuffer keeps the last max bytes written to it; a process's output
// is only for error messages. Safe for concurrent use.
type tailBuffer struct {
	max int
	mu  sync.Mutex // guards b
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports (the kernel's ABI fixes it).
const clockTicks = 100

// procCPU is the CPU time, user and system, that pid and all its threads
// have used, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces, so fields are counted from its closing parenthesis.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: /proc stat %q", ErrNetns, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc stat %q", ErrNetns, b)
	}
	var ticks uint64
	for _, s := range f[11:13] { // fields 14 and 15, counting from 1 with the pid
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: /proc stat %q", ErrNetns, b)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// procPeakRSS is pid's peak resident set (VmHWM) in bytes.
func procPeakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

// procRSS is pid's resident set now (VmRSS) in bytes.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmRSS")
}

// parseVmHWM reads "VmHWM:    1234 kB" from a /proc/<pid>/status.
func parseVmHWM(b []byte) (uint64, error) { return parseStatusKB(b, "VmHWM") }

// parseStatusKB reads the field key ("VmHWM", "VmRSS"), a size in kB, from
// a /proc/<pid>/status, in bytes.
func parseStatusKB(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return n << 10, nil
				}
			}
			return 0, fmt.Errorf("%w: /proc status line %q", ErrNetns, strings.TrimSpace(line))
		}
	}
	return 0, fmt.Errorf("%w: no %s in /proc status", ErrNetns, key)
}

// runIn runs a short command in namespace ns and returns its standard
// output; its standard error goes into the error. It runs in its own
// process group (a Ctrl-C is the harness's to handle) and is killed when
// ctx ends, or with interrupt, sent SIGINT (ping then prints its summary
// and exits) and killed only if it has not exited 2 s later.
func runIn(ctx context.Context, interrupt bool, ns, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if interrupt {
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 2 * time.Second
	}
	var stderr tailBuffer
	stderr.max = 4 << 10
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, err
}

// waitFor polls ok every 20 ms until it holds, failing when p exits
// first, after timeout, or when ctx ends.
func waitFor(ctx context.Context, p *nsProc, timeout time.Duration, ok func() bool) error {
	deadline := time.After(timeout)
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%w: %s exited at start: %v\n%s", ErrNetns, p.name, p.err, p.out)
		case <-deadline:
			return fmt.Errorf("%w: %s not ready within %v\n%s", ErrNetns, p.name, timeout, p.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
