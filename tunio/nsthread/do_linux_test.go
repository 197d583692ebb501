package nsthread

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDoComesHome checks that the thread Do ran fn on was in the
// namespace, and is, once Do has returned, back in the process's own
// namespace and alive: had it been left to the runtime to end, the main
// thread (which the runtime never ends) would stay in the namespace for
// good, and `ip netns pids` would list this process.
func TestDoComesHome(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test must run, but it needs root (ip netns add)")
		}
		t.Skip("needs root (ip netns add)")
	}
	ns := fmt.Sprintf("pgnsthread-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		var tid int
		var inside string
		err := Do(ns, func() (err error) {
			tid = unix.Gettid()
			inside, err = os.Readlink("/proc/thread-self/ns/net")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if inside == home {
			t.Fatalf("fn ran in the process's own namespace %s", home)
		}
		after, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", tid))
		if err != nil || after != home {
			t.Fatalf("thread %d after Do: namespace %q (%v), want back in %s", tid, after, err, home)
		}
	}
	if out, _ := exec.Command("ip", "netns", "pids", ns).Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("processes in %s after Do: %s", ns, out)
	}
}

// TestDoMissingNamespace: a namespace that does not exist is an error,
// and fn never runs.
func TestDoMissingNamespace(t *testing.T) {
	ran := false
	err := Do(fmt.Sprintf("pgnsthread-missing-%d", os.Getpid()), func() error { ran = true; return nil })
	if err == nil || ran {
		t.Fatalf("Do on a missing namespace: err %v, fn ran %v", err, ran)
	}
}
