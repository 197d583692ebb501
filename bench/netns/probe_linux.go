package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

// echoServer answers probe requests in a namespace: it sends every
// datagram it receives back to its sender, with its turnaround written
// into the requests. close stops it and waits.
type echoServer struct {
	conn *net.UDPConn
	done chan struct{} // closed when the serving goroutine has returned
}

// startEcho starts an echo server on addr in namespace ns.
func startEcho(ns string, addr netip.AddrPort) (*echoServer, error) {
	return startEchoHolding(ns, addr, 0)
}

// startEchoHolding starts an echo server that holds each request for
// hold before it answers: a test's slow server, whose turnaround the
// probe must take out.
func startEchoHolding(ns string, addr netip.AddrPort, hold time.Duration) (*echoServer, error) {
	var conn *net.UDPConn
	err := nsenv.InNetns(ns, func() (err error) {
		if conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr)); err != nil {
			return err
		}
		if err = stampArrivals(conn); err != nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: probe echo server: %v", core.ErrNetns, err)
	}
	e := &echoServer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 2048)
		oob := make([]byte, stampSpace)
		for {
			n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if hold > 0 {
				time.Sleep(hold)
			}
			if arrived, ok := arrivalStamp(oob[:oobn]); ok {
				probeTurnaround(buf[:n], time.Duration(time.Now().UnixNano()-arrived))
			}
			_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return e, nil
}

func (e *echoServer) close() {
	e.conn.Close()
	<-e.done
}

// runProbe sends a probe series from namespace ns to the echo server at
// to: after delay, a request every probeInterval for length, then waits
// probeLate for the last answers. Ending ctx ends the series early and
// returns what it measured.
func runProbe(ctx context.Context, ns string, to netip.AddrPort, delay, length time.Duration) (probeResult, error) {
	var conn *net.UDPConn
	err := nsenv.InNetns(ns, func() (err error) {
		if conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to)); err != nil {
			return err
		}
		if err = stampArrivals(conn); err != nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return probeResult{}, fmt.Errorf("%w: probe: %v", core.ErrNetns, err)
	}
	defer conn.Close()
	// The realtime clock, which the kernel's receive timestamps read.
	clock := func() int64 { return time.Now().UnixNano() }
	var mu sync.Mutex // guards tally
	var tally probeTally
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		oob := make([]byte, stampSpace)
		for {
			n, oobn, _, _, err := conn.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. ECONNREFUSED from an ICMP error: the next one may arrive
			}
			read := clock()
			arrived, stamped := arrivalStamp(oob[:oobn])
			if !stamped {
				arrived = read // the longer round trip, never a shorter one
			}
			if seq, sent, turnaround, ok := probeAnswer(buf[:n]); ok {
				mu.Lock()
				tally.answer(seq, sent, turnaround, arrived, read)
				mu.Unlock()
			}
		}
	}()
	defer func() {
		conn.Close()
		<-readerDone
	}()

	select {
	case <-ctx.Done():
		return probeResult{}, nil
	case <-time.After(delay):
	}
	req := make([]byte, probePayload)
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	end := time.After(length)
series:
	for {
		mu.Lock()
		seq := tally.request()
		mu.Unlock()
		probeRequest(req, seq, clock())
		_, _ = conn.Write(req) // a send that fails is a request unanswered
		select {
		case <-ctx.Done():
			break series
		case <-end:
			break series
		case <-tick.C:
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(probeLate):
	}
	conn.Close()
	<-readerDone
	mu.Lock()
	defer mu.Unlock()
	return tally.r, nil
}

// stampSpace is room for the control message of one receive timestamp.
var stampSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// stampArrivals asks the kernel to timestamp every datagram conn
// receives (SO_TIMESTAMPNS, the realtime clock), so that the probe's
// round trip does not count the wait of the reading process.
func stampArrivals(conn *net.UDPConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
	}
	return nil
}

// arrivalStamp reads the kernel's receive timestamp, in realtime
// nanoseconds, from a datagram's control messages.
func arrivalStamp(oob []byte) (int64, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS &&
			len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			return (*unix.Timespec)(unsafe.Pointer(&m.Data[0])).Nano(), true
		}
	}
	return 0, false
}
