package uapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// SocketDir is where wg(8) looks for userspace interfaces' sockets.
const SocketDir = "/var/run/wireguard"

// SocketPath is the socket of interface iface.
func SocketPath(iface string) string { return filepath.Join(SocketDir, iface+".sock") }

// idleTimeout closes a connection that sends nothing for this long, so a
// stuck client cannot hold a goroutine for ever. wg(8) sends its whole
// request at once.
const idleTimeout = 30 * time.Second

// bigSet is the number of peer blocks from which a set request is
// followed by a garbage collection that returns free memory to the
// system. Such a request (a wg setconf of a gateway's peers) leaves
// behind as much garbage as the peers it made cost (the parsed request,
// the batch's logs), and an idle tunnel allocates nothing more, so the
// collector would not run again and the process would keep that memory
// for good. A collection at 100,000 peers costs a few tens of
// milliseconds, after the client has its answer.
const bigSet = 1000

// Accept retries: a temporary accept error (the process at its open-file
// limit, memory short, a connection aborted before it was accepted) is
// retried after acceptBackoffMin, doubling up to acceptBackoffMax, as
// net/http does. So a flood of connections costs a log line a second at
// most, not a busy loop, and the socket keeps serving once it is over.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Server answers the protocol on one socket for one device. Make it with
// Listen; Serve runs it. Lock, if set, is held while a set request runs,
// so that the caller can serialise sets with its own changes (a config
// reload); a get takes no lock. The zero value is not usable.
type Server struct {
	dev  Device
	log  *slog.Logger
	ln   net.Listener // a *net.UnixListener; an interface so tests can inject accept errors
	path string
	lock sync.Locker
	own  bool // the socket file is this process's to remove

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// Listen creates the socket at path (mode 0600 in a directory it creates
// with mode 0755, as wireguard-go does) for dev. It refuses a directory
// that another user can write (see checkSocketDir). A stale socket left
// by a process that died is replaced; one that still answers is
// ErrInUse. lock may be nil; set requests hold it.
func Listen(path string, dev Device, lock sync.Locker, log *slog.Logger) (*Server, error) {
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	return newServer(ln, path, true, dev, lock, log), nil
}

// Inherit serves the listening socket f, made by the service manager
// (socket activation: a .socket unit, created by root in root's
// directory), for dev. It must be a listening unix stream socket bound at
// path, in a directory no other user can write. Serve leaves the file to
// its maker. f may be closed once Inherit returns.
func Inherit(f *os.File, path string, dev Device, lock sync.Locker, log *slog.Logger) (*Server, error) {
	ln, err := inheritUnix(f, path)
	if err != nil {
		return nil, err
	}
	return newServer(ln, path, false, dev, lock, log), nil
}

// CheckSocketDir refuses, creating nothing, a socket directory that
// another user can write, before a start makes anything.
func CheckSocketDir() error { return checkSocketDir(SocketDir, false) }

func newServer(ln net.Listener, path string, own bool, dev Device, lock sync.Locker, log *slog.Logger) *Server {
	if lock == nil {
		lock = &sync.Mutex{}
	}
	return &Server{dev: dev, log: log, ln: ln, path: path, lock: lock, own: own, conns: map[net.Conn]struct{}{}}
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until ctx ends, then closes the listener and
// every connection, waits for their goroutines and removes the socket
// file. Temporary accept errors are retried with a backoff. It returns
// nil after ctx ends, or the permanent error that stopped accepting.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, s.shutdown)
	defer func() {
		stop()
		s.shutdown()
		wg.Wait()
		// The listener unlinks the socket on Close (Go's default for
		// sockets it created); this catches the case where it did not.
		// A socket passed in is its maker's to remove.
		if !s.own {
			return
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing UAPI socket", "path", s.path, "err", err)
		}
	}()
	s.log.Info("UAPI socket listening", "path", s.path, "passed_in", !s.own)
	done := ctx.Done()
	var backoff time.Duration // of the current run of accept errors; 0: none
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("%w: accept: %v", ErrIO, err)
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			s.log.Warn("UAPI accept failed; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-done:
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if backoff != 0 {
			s.log.Info("UAPI accepting again")
			backoff = 0
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		wg.Go(func() {
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		})
	}
}

// shutdown closes the listener and every connection, which unblocks
// Accept and the handlers' reads. Calling it twice is harmless.
func (s *Server) shutdown() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// handle serves the requests of one connection until it closes or sends
// something that is not a request.
func (s *Server) handle(c net.Conn) {
	r := bufio.NewReaderSize(c, maxLine)
	w := bufio.NewWriter(c)
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		op, err := readLine(r)
		if err != nil {
			return
		}
		switch op {
		case "get=1":
			blank, err := readLine(r)
			if err != nil {
				return
			}
			if blank != "" {
				// wireguard-go answers EINVAL and reads on.
				w.Write(errnoLine(fmt.Errorf("%w: get=1 must be followed by a blank line", ErrInvalid)))
				break
			}
			// No lock: the answer comes from one snapshot of the
			// tunnel's peers, so a get does not wait for a set (nor a set
			// for a get) and sees it whole or not at all.
			c.SetWriteDeadline(time.Now().Add(idleTimeout))
			if WriteGet(w, s.dev) != nil {
				return
			}
			w.Write(errnoLine(nil))
		case "set=1":
			req, perr := ParseSet(r)
			if perr != nil && (errors.Is(perr, io.EOF) || isTimeout(perr)) {
				return
			}
			err = perr
			if err == nil {
				s.lock.Lock()
				err = Apply(s.dev, req)
				s.lock.Unlock()
			}
			if err != nil {
				s.log.Warn("UAPI set refused", "err", err)
			} else {
				s.log.Info("UAPI set applied", "peers", len(req.Peers), "replace_peers", req.ReplacePeers)
			}
			w.Write(errnoLine(err))
			if req != nil && len(req.Peers) >= bigSet {
				if w.Flush() != nil {
					return
				}
				// The client has its answer; now hand back what the
				// request cost beyond what the tunnel keeps (see bigSet).
				req = nil
				debug.FreeOSMemory()
			}
		default:
			// As wireguard-go: an unknown operation ends the connection.
			s.log.Warn("UAPI: unknown operation", "op", truncate(op, 32))
			return
		}
		if w.Flush() != nil {
			return
		}
	}
}

// temporary reports whether an accept error is worth retrying: a
// shortage that ends when connections close, or a connection the client
// gave up before it was accepted. Anything else (the listener closed or
// broken) stops the server.
func temporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
