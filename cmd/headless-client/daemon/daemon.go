// Package daemon detaches a command into the background the way
// wireguard-go does, and the way wg-quick expects of a userspace
// WireGuard: the program starts itself again as a child in a session of
// its own, with its standard streams on /dev/null, and the parent exits
// 0 only once the child reports that it is ready (its interface and
// socket exist), or 1 with the child's one-line reason when it fails
// first. The report travels over a pipe the child inherits; nothing is
// shared but that pipe and the environment.
package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment of the child.
const (
	// EnvForeground is wireguard-go's: "1" keeps a command in the
	// foreground. The child gets it, so that it does not detach again.
	EnvForeground = "WG_PROCESS_FOREGROUND"
	// envReadyFD names the child's file descriptor for its report.
	envReadyFD = "PIPEGUARD_READY_FD"
)

// Messages on the report pipe: one line.
const (
	msgReady = "READY"
	msgError = "ERROR "
)

// StartTimeout bounds how long the parent waits for the child's report:
// creating an interface and a socket takes milliseconds, so a child
// silent this long is stuck, and it is killed.
const StartTimeout = 30 * time.Second

// ErrNoReport is wrapped by Detach's error when the child exited, or was
// killed after StartTimeout, without saying whether it started.
var ErrNoReport = errors.New("daemon: the background process exited before it reported")

// Foreground reports whether the environment asks a command to stay in
// the foreground (WG_PROCESS_FOREGROUND=1, as wireguard-go reads it).
func Foreground() bool { return os.Getenv(EnvForeground) == "1" }

// Detach starts exe with args in the background and waits for its
// report. The child runs in a new session (no controlling terminal, so a
// closed terminal's SIGHUP does not reach it), with stdin on /dev/null,
// and stdout and stderr on /dev/null unless keepOutput (wireguard-go
// keeps them when LOG_LEVEL is set). It returns nil once the child is
// ready, which then runs on alone; the child's error when it failed
// first; or an error wrapping ErrNoReport.
func Detach(exe string, args []string, keepOutput bool) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), EnvForeground+"=1", envReadyFD+"=3")
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	if keepOutput {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close() // the child holds the write end now: EOF once it exits
	if err != nil {
		return fmt.Errorf("daemon: starting %s: %w", exe, err)
	}
	report := make(chan string, 1)
	go func() { // ends at the child's report or exit (EOF)
		line, _ := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
		report <- strings.TrimSuffix(line, "\n")
	}()
	var line string
	select {
	case line = <-report:
	case <-time.After(StartTimeout):
		cmd.Process.Kill()
	}
	switch {
	case line == msgReady:
		return cmd.Process.Release() // it runs on; init reaps it
	case strings.HasPrefix(line, msgError):
		cmd.Wait()
		return errors.New(strings.TrimPrefix(line, msgError))
	}
	werr := cmd.Wait()
	if werr == nil {
		werr = errors.New("exit status 0")
	}
	return fmt.Errorf("%w (%v)", ErrNoReport, werr)
}

// Reporter is the child's end: it tells the waiting parent whether the
// start worked, once. A nil *Reporter (a command not started by Detach)
// ignores every call.
type Reporter struct {
	f *os.File
}

// FromEnv returns the Reporter of a child started by Detach, or nil.
// It takes the descriptor out of the environment, so that programs the
// command starts do not inherit the claim.
func FromEnv() *Reporter {
	v, ok := os.LookupEnv(envReadyFD)
	if !ok {
		return nil
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return &Reporter{f: os.NewFile(uintptr(fd), "daemon-report")}
}

// Ready tells the parent that the command started; the parent exits 0.
func (r *Reporter) Ready() { r.send(msgReady) }

// Failed tells the parent why the command could not start, in one line;
// the parent prints it and exits 1.
func (r *Reporter) Failed(err error) {
	r.send(msgError + strings.ReplaceAll(err.Error(), "\n", " "))
}

func (r *Reporter) send(line string) {
	if r == nil || r.f == nil {
		return
	}
	r.f.WriteString(line + "\n")
	r.f.Close()
	r.f = nil
}
