package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// earlyHupPackage is the package whose init catches SIGHUP.
const earlyHupPackage = "pipeguard/cmd/headless-client/lifecycle/earlyhup"

// TestSIGHUPCaughtFromInit: a SIGHUP sent the moment the client's
// package initialisation has caught it (GODEBUG=inittrace=1 prints a
// package's line once its init is done) never kills the client, which
// goes on to fail for its missing config (exit 1), 20 times out of 20,
// whatever the machine's load. And the package that catches it is the
// first package with any init work after os/signal, the package it
// needs: Go initialises, among the packages whose imports are done,
// the one whose import path sorts first, and a package with init work
// that came between the two would lengthen the window in which a
// SIGHUP kills the client.
func TestSIGHUPCaughtFromInit(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "missing.conf")
	for i := range 20 {
		cmd := exec.Command(b.client, "standalone", "--config", conf)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var before, rest strings.Builder
		found := false
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "init "+earlyHupPackage+" ") {
				found = true
				break
			}
			if strings.HasPrefix(line, "init ") {
				before.Reset()
				before.WriteString(line)
			}
		}
		if found {
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		io.Copy(&rest, stderr)
		err = cmd.Wait()
		if !found {
			t.Fatalf("run %d: no init trace line for %s (exit %v)", i, earlyHupPackage, err)
		}
		if killedBy(err, syscall.SIGHUP) {
			t.Fatalf("run %d: a SIGHUP sent after %s's init killed the client", i, earlyHupPackage)
		}
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(rest.String(), "missing.conf") {
			t.Fatalf("run %d: exit %v, want 1 for the missing config:\n%s", i, err, rest.String())
		}
		if pkg := strings.Fields(before.String()); len(pkg) < 2 || pkg[1] != "os/signal" {
			t.Fatalf("the package initialised before %s is %q, not os/signal: an init with work now runs first, and a SIGHUP that early kills the client", earlyHupPackage, before.String())
		}
	}
}

// TestSIGHUPWindow measures how long after exec a SIGHUP still kills
// the client: for each delay, PIPEGUARD_SIGHUP_RUNS starts (10 unless
// set) of `standalone` with a config it cannot open, each sent one
// SIGHUP that long after exec returned (a busy wait, for precision),
// counting the starts that died of it. It measures a minimal Go program
// that catches SIGHUP in its only init (testdata/minimalhup) the same
// way, interleaved, as the floor: the window of the Go runtime itself.
// It logs both rows with the load average; the README gives a quiet
// machine's figures. It fails if a SIGHUP 200 ms after exec still
// kills: the window is a few milliseconds even on a loaded machine.
func TestSIGHUPWindow(t *testing.T) {
	b := binaries(t)
	runs := 10
	if s := os.Getenv("PIPEGUARD_SIGHUP_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("PIPEGUARD_SIGHUP_RUNS=%q: want a positive number", s)
		}
		runs = n
	}
	minimal := filepath.Join(t.TempDir(), "minimalhup")
	build := exec.Command("go", "build", "-o", minimal, "./testdata/minimalhup/main.go")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build minimalhup: %v\n%s", err, out)
	}
	conf := filepath.Join(t.TempDir(), "missing.conf")
	progs := []struct {
		name string
		argv []string
	}{
		{"client", []string{b.client, "standalone", "--config", conf}},
		{"minimal Go", []string{minimal}},
	}
	delays := []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond,
		2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond, 5 * time.Millisecond,
		7 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond}
	killed := make([][]int, len(progs))
	for i := range progs {
		killed[i] = make([]int, len(delays))
	}
	for j, d := range delays {
		for range runs {
			for i, p := range progs {
				dead, err := hupAfter(p.argv, d)
				if err != nil {
					t.Fatalf("%s, SIGHUP after %v: %v", p.name, d, err)
				}
				if dead {
					killed[i][j]++
				}
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	var tab strings.Builder
	fmt.Fprintf(&tab, "starts killed by a SIGHUP sent this long after exec, of %d each (load average %s):\n%-12s", runs, strings.Join(strings.Fields(string(load))[:3], " "), "")
	for _, d := range delays {
		fmt.Fprintf(&tab, "%8v", d)
	}
	for i, p := range progs {
		fmt.Fprintf(&tab, "\n%-12s", p.name)
		for j := range delays {
			fmt.Fprintf(&tab, "%8d", killed[i][j])
		}
	}
	t.Log(tab.String())
	if n := killed[0][len(delays)-1]; n > 0 {
		t.Errorf("%d of %d starts died of a SIGHUP sent %v after exec", n, runs, delays[len(delays)-1])
	}
}

// hupAfter starts argv, sends it SIGHUP d after exec returned, and
// reports whether it died of it. A process that exited before the
// signal went did not.
func hupAfter(argv []string, d time.Duration) (bool, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return false, err
	}
	t0 := time.Now()
	for time.Since(t0) < d {
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil && !errors.Is(err, os.ErrProcessDone) {
		cmd.Wait()
		return false, err
	}
	return killedBy(cmd.Wait(), syscall.SIGHUP), nil
}
