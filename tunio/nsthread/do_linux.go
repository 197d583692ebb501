package nsthread

import (
	"fmt"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has joined the network namespace name
// (/var/run/netns/name). What fn creates stays in the namespace. The
// thread is locked to fn's goroutine, and afterwards joins this process's
// namespace again before the scheduler may use it; if it cannot, it stays
// locked and the runtime ends it with the goroutine. So no other
// goroutine ever runs in the namespace by accident.
//
// Going back matters also when the thread is the process's main thread,
// which the runtime never ends (it parks it for good instead): left in the
// namespace, it would make the whole process one of the namespace's (as
// `ip netns pids` sees it), and a cleanup that kills those would kill the
// process itself.
func Do(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open own netns: %w", err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(filepath.Join("/var/run/netns", name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open netns %s: %w", name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns: setns %s: %w", name, err)
			return
		}
		err = fn()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
