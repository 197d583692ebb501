// Package sdnotifytest is the service manager's end of the notify
// protocol, for tests: a datagram socket that collects what a service
// sends to $NOTIFY_SOCKET, as systemd would.
package sdnotifytest

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Message is one datagram, split into its VAR=value lines.
type Message struct {
	Vars map[string]string
	At   time.Time // when it was received
}

// Has reports whether the message sets key to value.
func (m Message) Has(key, value string) bool {
	v, ok := m.Vars[key]
	return ok && v == value
}

// Listener collects notifications. Make one with Listen.
type Listener struct {
	// Path is the value for NOTIFY_SOCKET.
	Path string
	conn *net.UnixConn
	msgs chan Message // every datagram, in order; closed when the socket is
}

// Listen makes a listener on a socket in a test's temporary directory,
// closed in t.Cleanup.
func Listen(t testing.TB) *Listener {
	t.Helper()
	return ListenAt(t, filepath.Join(t.TempDir(), "notify"))
}

// ListenAt is Listen at path; a leading '@' makes an abstract socket.
func ListenAt(t testing.TB, path string) *Listener {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Path: path, conn: conn, msgs: make(chan Message, 1024)}
	go l.read()
	t.Cleanup(func() { conn.Close() })
	return l
}

// read receives datagrams until the socket closes, then closes l.msgs.
func (l *Listener) read() {
	defer close(l.msgs)
	buf := make([]byte, 64<<10)
	for {
		n, err := l.conn.Read(buf)
		if err != nil {
			return
		}
		m := Message{Vars: map[string]string{}, At: time.Now()}
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m.Vars[k] = v
			}
		}
		l.msgs <- m
	}
}

// Next returns the next message, or fails the test after within.
func (l *Listener) Next(t testing.TB, within time.Duration) Message {
	t.Helper()
	select {
	case m, ok := <-l.msgs:
		if !ok {
			t.Fatal("notify socket closed")
		}
		return m
	case <-time.After(within):
		t.Fatalf("no notification within %v", within)
		return Message{}
	}
}

// WaitFor returns the first message that sets key to value, skipping
// others (passed to skipped, if not nil), or fails the test after within.
func (l *Listener) WaitFor(t testing.TB, key, value string, within time.Duration, skipped func(Message)) Message {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-l.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if m.Has(key, value) {
				return m
			}
			if skipped != nil {
				skipped(m)
			}
		case <-deadline:
			t.Fatalf("no %s=%s within %v", key, value, within)
			return Message{}
		}
	}
}
