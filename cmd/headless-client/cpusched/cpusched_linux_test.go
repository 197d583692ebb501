package cpusched

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/internal/selfcopy"
)

// The tests run Realtime in a child process (this test binary again, with
// childEnv set), so that the test binary itself stays in the fair class.
const childEnv = "CPUSCHED_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child calls Realtime, then makes the runtime start more threads, and
// prints what it found: "already" or "moved", then "all-realtime" if every
// thread, old and new, runs SCHED_RR, or the error.
func child() int {
	already, err := Realtime()
	if err != nil {
		fmt.Println("error:", err)
		if errors.Is(err, ErrNotPermitted) {
			fmt.Println("not-permitted")
		}
		return 0
	}
	if already {
		fmt.Println("already")
	} else {
		fmt.Println("moved")
	}
	// Goroutines locked to their threads while they wait force the
	// runtime to start new ones, which must inherit the policy.
	var started, release sync.WaitGroup
	release.Add(1)
	for range 4 {
		started.Add(1)
		go func() {
			runtime.LockOSThread()
			started.Done()
			release.Wait()
		}()
	}
	started.Wait()
	tids, err := threads()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for _, tid := range tids {
		rt, err := IsRealtime(tid)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if !rt {
			fmt.Printf("thread %d of %d is in the fair class\n", tid, len(tids))
			return 1
		}
	}
	release.Done()
	fmt.Printf("all-realtime %d threads\n", len(tids))
	return 0
}

// runChild runs the test binary exe (empty: this one) as the child, under
// prefix (a command such as chrt) and with attr, and returns its output.
func runChild(t *testing.T, exe string, attr *syscall.SysProcAttr, prefix ...string) string {
	t.Helper()
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	argv := append(prefix, exe, "-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return string(out)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the tests as root; this one needs it")
		}
		t.Skip("needs root (CAP_SYS_NICE)")
	}
}

// TestRealtimeMovesEveryThread: as root, Realtime moves the threads the
// process has, and the threads the runtime starts afterwards inherit it.
func TestRealtimeMovesEveryThread(t *testing.T) {
	needRoot(t)
	out := runChild(t, "", nil)
	if !strings.Contains(out, "moved") || !strings.Contains(out, "all-realtime") {
		t.Fatalf("child said:\n%s", out)
	}
}

// TestRealtimeAlreadySet: a process started real-time (as systemd's
// CPUSchedulingPolicy=rr starts it) is left as it is.
func TestRealtimeAlreadySet(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("chrt"); err != nil {
		t.Skip("chrt (util-linux) not installed")
	}
	out := runChild(t, "", nil, "chrt", "--rr", "1")
	if !strings.Contains(out, "already") || !strings.Contains(out, "all-realtime") {
		t.Fatalf("child said:\n%s", out)
	}
}

// TestRealtimeNotPermitted: a user without CAP_SYS_NICE and without an
// RLIMIT_RTPRIO gets ErrNotPermitted, and its threads stay as they were.
func TestRealtimeNotPermitted(t *testing.T) {
	needRoot(t)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTPRIO, &lim); err == nil && lim.Cur > 0 {
		t.Skipf("RLIMIT_RTPRIO is %d here: an unprivileged user may take real-time scheduling", lim.Cur)
	}
	// The user nobody runs a copy of the test binary from a directory
	// it can search (go test's own is root's alone).
	copied := selfcopy.ForOthers(t, "cpusched.test")
	out := runChild(t, copied, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	if !strings.Contains(out, "not-permitted") {
		t.Fatalf("child said:\n%s", out)
	}
}
