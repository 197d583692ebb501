package nsenv

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

	"pipeguard/bench/core"
)

// Proc is a long-running process of a namespace mode (a tunnel, the
// iperf3 server) inside a namespace, started through `ip netns exec`,
// which execs the program in place: the pid is the program's own.
//
// It runs in its own process group, so a Ctrl-C on the terminal reaches
// only the harness, which stops it in order; and with a parent-death
// signal, so it dies with a harness that is killed outright.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	Out  *TailBuffer // stdout and stderr, the end of them
	done chan struct{}
	err  error // Wait's result, set before done closes
}

// StartProc starts bin with args in namespace ns, its environment
// the harness's and env; name names it in messages.
func StartProc(ns, name string, env []string, bin string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Out: &TailBuffer{Max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Out, p.Out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %v", core.ErrNetns, name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (Wait's result), once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills. It
// returns the exit status (-1 when killed or never started cleanly).
func (p *Proc) Stop(grace time.Duration) int {
	if !p.Exited() {
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

// TailBuffer keeps the last max bytes written to it; a process's output
// is only for error messages. Safe for concurrent use.
type TailBuffer struct {
	Max int
	mu  sync.Mutex // guards b
	b   []byte
}

// Write keeps p, and drops what is over Max from the start.
func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.Max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// String is what the buffer holds.
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports (the kernel's ABI fixes it).
const clockTicks = 100

// ProcCPU is the CPU time, user and system, that pid and all its threads
// have used, from /proc/<pid>/stat.
func ProcCPU(pid int) (time.Duration, error) {
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
		return 0, fmt.Errorf("%w: /proc stat %q", core.ErrNetns, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc stat %q", core.ErrNetns, b)
	}
	var ticks uint64
	for _, s := range f[11:13] { // fields 14 and 15, counting from 1 with the pid
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: /proc stat %q", core.ErrNetns, b)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// ProcPeakRSS is pid's peak resident set (VmHWM) in bytes.
func ProcPeakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

// ProcRSS is pid's resident set now (VmRSS) in bytes.
func ProcRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatusKB(b, "VmRSS")
}

// parseVmHWM reads "VmHWM:    1234 kB" from a /proc/<pid>/status.
func parseVmHWM(b []byte) (uint64, error) { return ParseStatusKB(b, "VmHWM") }

// ParseStatusKB reads the field key ("VmHWM", "VmRSS"), a size in kB, from
// a /proc/<pid>/status, in bytes.
func ParseStatusKB(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return n << 10, nil
				}
			}
			return 0, fmt.Errorf("%w: /proc status line %q", core.ErrNetns, strings.TrimSpace(line))
		}
	}
	return 0, fmt.Errorf("%w: no %s in /proc status", core.ErrNetns, key)
}

// RunIn runs a short command in namespace ns and returns its standard
// output; its standard error goes into the error. It runs in its own
// process group (a Ctrl-C is the harness's to handle) and is killed when
// ctx ends, or with interrupt, sent SIGINT (ping then prints its summary
// and exits) and killed only if it has not exited 2 s later.
//
// With interrupt, SIGINT waits until the command has printed two lines
// (ping's header and its first reply), at most interruptGrace: until
// then it may not have its handler yet (`ip netns exec` is still setting
// up, or ping has just started), and would die without a word. A loaded
// machine (the tests under -race) can take that long to start it.
func RunIn(ctx context.Context, interrupt bool, ns, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout linesWriter
	stdout.running = make(chan struct{})
	cmd.Stdout = &stdout
	if interrupt {
		cmd.Cancel = func() error {
			select {
			case <-stdout.running:
			case <-time.After(interruptGrace):
			}
			return cmd.Process.Signal(os.Interrupt)
		}
		cmd.WaitDelay = interruptGrace + 2*time.Second
	}
	var stderr TailBuffer
	stderr.Max = 4 << 10
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.bytes(), err
}

// interruptGrace bounds how long RunIn's SIGINT waits for the command to
// be running.
const interruptGrace = time.Second

// linesWriter keeps a command's output and closes running once it holds
// two lines.
type linesWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	lines   int
	running chan struct{}
}

func (w *linesWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.lines < 2 {
		w.lines += bytes.Count(p, []byte{'\n'})
		if w.lines >= 2 {
			close(w.running)
		}
	}
	return len(p), nil
}

func (w *linesWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Bytes()
}

// WaitFor polls ok every 20 ms until it holds, failing when p exits
// first, after timeout, or when ctx ends.
func WaitFor(ctx context.Context, p *Proc, timeout time.Duration, ok func() bool) error {
	deadline := time.After(timeout)
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%w: %s exited at start: %v\n%s", core.ErrNetns, p.Name, p.err, p.Out)
		case <-deadline:
			return fmt.Errorf("%w: %s not ready within %v\n%s", core.ErrNetns, p.Name, timeout, p.Out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// LastLine is the last non-empty line of s.
func LastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
