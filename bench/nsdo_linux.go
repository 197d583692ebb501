package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread that has joined the network namespace
// ns, so that the sockets fn makes are the namespace's. The thread is
// locked to fn's goroutine, and afterwards joins this process's namespace
// again before the scheduler may use it; if it cannot, it stays locked and
// the runtime ends it with the goroutine. Going back matters also when the
// thread is the main thread, which the runtime never ends: left in ns, it
// would make the harness one of ns's processes (ip netns pids), which
// removeNetns kills. (cmd/internal/netns does the same; package bench may
// not import it, being outside cmd.)
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("%w: open own netns: %v", ErrNetns, err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(filepath.Join("/var/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("%w: open netns %s: %v", ErrNetns, ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("%w: setns %s: %v", ErrNetns, ns, err)
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

// httpTimeout bounds one request inside a namespace: on its loopback,
// an answer takes milliseconds.
const httpTimeout = 5 * time.Second

// httpGetIn fetches url (http://host:port/path) from inside namespace ns
// and returns the body of a 200 answer.
func httpGetIn(ctx context.Context, ns, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	var conn net.Conn
	err = inNetns(ns, func() (err error) {
		d := net.Dialer{Timeout: httpTimeout}
		conn, err = d.DialContext(ctx, "tcp", req.URL.Host)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(httpTimeout))
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}
