package nsenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"pipeguard/bench/core"
	"pipeguard/tunio/nsthread"
)

// InNetns runs fn on an OS thread that has joined the network namespace
// ns, so that the sockets fn makes are the namespace's (nsthread.Do). The
// thread never carries the harness into ns for good: Close kills
// ns's processes.
func InNetns(ns string, fn func() error) error {
	var fnErr error
	if err := nsthread.Do(ns, func() error { fnErr = fn(); return nil }); err != nil {
		return fmt.Errorf("%w: %v", core.ErrNetns, err)
	}
	return fnErr
}

// httpTimeout bounds one request inside a namespace: on its loopback,
// an answer takes milliseconds.
const httpTimeout = 5 * time.Second

// HTTPGetIn fetches url (http://host:port/path) from inside namespace ns
// and returns the body of a 200 answer, within httpTimeout or ctx's
// deadline, whichever is later (a large answer may need more).
func HTTPGetIn(ctx context.Context, ns, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	var conn net.Conn
	err = InNetns(ns, func() (err error) {
		d := net.Dialer{Timeout: httpTimeout}
		conn, err = d.DialContext(ctx, "tcp", req.URL.Host)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(httpTimeout)
	if d, ok := ctx.Deadline(); ok && d.After(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
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
