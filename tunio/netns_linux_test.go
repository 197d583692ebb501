package tunio

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root and /dev/net/tun, unless CI is
// set: there it must run, so a missing privilege fails loudly.
func requireRoot(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/dev/net/tun")
	if os.Geteuid() == 0 && err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: this test must run, but euid=%d, /dev/net/tun: %v", os.Geteuid(), err)
	}
	t.Skip("needs root and /dev/net/tun")
}

// netns runs functions inside a fresh network namespace that belongs to the
// test alone. It owns one goroutine locked to an OS thread that unshared
// the namespace; the thread is never given back to the scheduler (the
// goroutine exits still locked, so the runtime ends the thread), so no
// other goroutine ever runs in the namespace by accident. Sockets and
// devices created through do stay in the namespace; the namespace, and any
// TUN in it, disappears when the last of them is closed. Nothing is left
// behind, not even if the test process dies.
type netns struct {
	fns  chan func()
	done chan struct{}
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	ns := &netns{fns: make(chan func()), done: make(chan struct{})}
	ready := make(chan error)
	go func() {
		defer close(ns.done)
		runtime.LockOSThread()
		// No UnlockOSThread: the thread is in the wrong namespace for
		// anyone else.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for fn := range ns.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("unshare network namespace: %v", err)
	}
	t.Cleanup(func() {
		close(ns.fns)
		<-ns.done
	})
	return ns
}

// do runs fn in the namespace and returns when it has.
func (ns *netns) do(fn func()) {
	done := make(chan struct{})
	ns.fns <- func() {
		defer close(done)
		fn()
	}
	<-done
}
