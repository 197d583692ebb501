package peers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

// idleCPU is pid's CPU over window, after a pause for the last change to
// settle, in percent of one core.
func idleCPU(ctx context.Context, pid int, window time.Duration) (float64, error) {
	if err := sleep(ctx, settle); err != nil {
		return 0, err
	}
	c0, err := nsenv.ProcCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := sleep(ctx, window); err != nil {
		return 0, err
	}
	c1, err := nsenv.ProcCPU(pid)
	if err != nil {
		return 0, err
	}
	return 100 * (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// threads is pid's number of OS threads.
func threads(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: no Threads in /proc/%d/status", core.ErrNetns, pid)
}

// uapiSet sends one set request on the UAPI socket and returns how long
// the answer took, in milliseconds; an errno other than 0 is an error.
func uapiSet(sock, req string) (float64, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	t0 := time.Now()
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, err
	}
	var answer strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("%w: UAPI answer: %v", core.ErrNetns, err)
		}
		if line == "\n" {
			break
		}
		answer.WriteString(line)
	}
	ms := float64(time.Since(t0).Microseconds()) / 1000
	if answer.String() != "errno=0\n" {
		return 0, fmt.Errorf("%w: UAPI set answered %q", core.ErrNetns, answer.String())
	}
	return ms, nil
}
