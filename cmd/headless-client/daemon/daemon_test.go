package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain lets the tests use this binary as the detached child: with
// DAEMON_TEST_CHILD set, it is the child and does what the value says.
func TestMain(m *testing.M) {
	if mode := os.Getenv("DAEMON_TEST_CHILD"); mode != "" {
		child(mode)
		return
	}
	os.Exit(m.Run())
}

// child checks what Detach promises a child, then reports as mode says.
func child(mode string) {
	r := FromEnv()
	if mode == "silent" {
		os.Exit(3)
	}
	var problems []string
	if r == nil {
		problems = append(problems, "no reporter")
	}
	if !Foreground() {
		problems = append(problems, "WG_PROCESS_FOREGROUND is not 1")
	}
	if _, ok := os.LookupEnv(envReadyFD); ok {
		problems = append(problems, envReadyFD+" still set")
	}
	if sid, _ := unix.Getsid(0); sid != os.Getpid() {
		problems = append(problems, fmt.Sprintf("session %d, not its own", sid))
	}
	for fd := range 3 {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); target != os.DevNull {
			problems = append(problems, fmt.Sprintf("fd %d is %s", fd, target))
		}
	}
	if len(problems) > 0 {
		r.Failed(errors.New(strings.Join(problems, "; ")))
		os.Exit(1)
	}
	switch mode {
	case "ready":
		r.Ready()
		time.Sleep(100 * time.Millisecond) // runs on after the parent is gone
		os.Exit(0)
	case "fail":
		r.Failed(errors.New("tunnel: creating TUN device wg0: operation not permitted\n(second line)"))
		os.Exit(1)
	}
}

func detach(t *testing.T, mode string) error {
	t.Helper()
	t.Setenv("DAEMON_TEST_CHILD", mode)
	return Detach(os.Args[0], []string{"-test.run=^$"}, false)
}

func TestDetachReady(t *testing.T) {
	if err := detach(t, "ready"); err != nil {
		t.Fatalf("Detach of a child that got ready: %v", err)
	}
}

func TestDetachFailure(t *testing.T) {
	err := detach(t, "fail")
	if err == nil || err.Error() != "tunnel: creating TUN device wg0: operation not permitted (second line)" {
		t.Fatalf("Detach of a child that failed: %v; want its reason on one line", err)
	}
}

func TestDetachSilentExit(t *testing.T) {
	if err := detach(t, "silent"); !errors.Is(err, ErrNoReport) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Detach of a child that exited without a word: %v", err)
	}
}

// TestReporterNil: a command not started by Detach has no reporter, and
// its calls do nothing.
func TestReporterNil(t *testing.T) {
	os.Unsetenv(envReadyFD)
	r := FromEnv()
	if r != nil {
		t.Fatalf("FromEnv outside a detached child: %v", r)
	}
	r.Ready()
	r.Failed(errors.New("x"))
}
