package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
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
	stamps, err := stampSends(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: probe echo server: %v", core.ErrNetns, err)
	}
	e := &echoServer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 2048)
		oob := make([]byte, stampSpace)
		// before: by sender, the request answered last and how long it
		// was held, to its answer's send stamp: the next answer to that
		// sender carries it.
		type answered struct {
			seq  uint32
			held time.Duration
		}
		before := make(map[netip.AddrPort]answered)
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
			arrived, stamped := arrivalStamp(oob[:oobn])
			if stamped {
				probeTurnaround(buf[:n], time.Duration(time.Now().UnixNano()-arrived))
			}
			if a, ok := before[from]; ok {
				probeHeldBefore(buf[:n], a.seq, a.held)
			}
			delete(before, from)
			if _, err := conn.WriteToUDPAddrPort(buf[:n], from); err != nil {
				continue
			}
			left, ok := stamps.sent()
			if seq, _, _, request := probeAnswer(buf[:n]); request && ok && stamped {
				before[from] = answered{seq, time.Duration(left - arrived)}
			}
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
	stamps, err := stampSends(conn)
	if err != nil {
		return probeResult{}, fmt.Errorf("%w: probe: %v", core.ErrNetns, err)
	}
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
				if seq, held, ok := probeHeldOf(buf[:n]); ok {
					tally.held(seq, held)
				}
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
		// The lock is held over the send, so that the answer is
		// tallied only once the request's send stamp is in.
		mu.Lock()
		seq := tally.request()
		probeRequest(req, seq, clock())
		if _, err := conn.Write(req); err == nil { // a send that fails is a request unanswered
			if left, ok := stamps.sent(); ok {
				tally.left(seq, left)
			}
		}
		mu.Unlock()
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

// stampSpace is room for the control messages of a received datagram:
// its receive timestamp (SO_TIMESTAMPNS), and the same again as
// SCM_TIMESTAMPING on a socket that stamps its sends (stampSends).
var stampSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(int(unsafe.Sizeof(unix.ScmTimestamping{})))

// sendStamps reads the kernel's stamps of when each datagram a socket
// sent was handed to the network device (SO_TIMESTAMPING's
// SOF_TIMESTAMPING_TX_SCHED: before the device's queue; for the tunnel's
// TUN device, as the packet enters the ring the tunnel reads). The probe
// times its requests from there, as it times the answers to their
// arrival in the kernel: the sending process, in the fair class on
// cores the load fills, can be held for milliseconds between reading the
// clock and its packet leaving, and that is its own wait, not the
// network's or the tunnel's (it stays in the app round trip). Used by
// one goroutine.
type sendStamps struct {
	rc   syscall.RawConn
	next uint32 // the stamp id of the next datagram sent (SOF_TIMESTAMPING_OPT_ID counts from 0)
	oob  []byte
}

// stampSends asks the kernel to stamp every datagram conn sends.
func stampSends(conn *net.UDPConn) (*sendStamps, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	const flags = unix.SOF_TIMESTAMPING_TX_SCHED | unix.SOF_TIMESTAMPING_SOFTWARE |
		unix.SOF_TIMESTAMPING_OPT_ID | unix.SOF_TIMESTAMPING_OPT_TSONLY
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_TIMESTAMPING: %w", serr)
	}
	return &sendStamps{rc: rc, oob: make([]byte, 512)}, nil
}

// sent is called after each send that succeeded: it reports the
// kernel's stamp of it, in realtime nanoseconds, from the socket's error
// queue, where the send left it before it returned; false if there is
// none (then the request is timed from the clock read before it).
func (s *sendStamps) sent() (int64, bool) {
	id := s.next
	s.next++
	var stamp int64
	var found bool
	for !found {
		var oobn int
		var rerr error
		if err := s.rc.Control(func(fd uintptr) {
			_, oobn, _, _, rerr = unix.Recvmsg(int(fd), nil, s.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		}); err != nil || rerr != nil {
			return 0, false // EAGAIN: the queue is empty
		}
		stamp, found = sendStamp(s.oob[:oobn], id)
	}
	return stamp, true
}

// sendStamp reads, from the control messages of one message of a
// socket's error queue, the stamp of datagram id entering the device's
// queue; false for anything else (another datagram's, another kind of
// stamp, an ICMP error).
func sendStamp(oob []byte, id uint32) (int64, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	var stamp int64
	var stamped, ours bool
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPING &&
			len(m.Data) >= int(unsafe.Sizeof(unix.ScmTimestamping{})):
			ts := (*unix.ScmTimestamping)(unsafe.Pointer(&m.Data[0]))
			stamp, stamped = ts.Ts[0].Nano(), ts.Ts[0] != unix.Timespec{}
		case (m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR ||
			m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) &&
			len(m.Data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})):
			e := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
			ours = e.Errno == uint32(unix.ENOMSG) && e.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING &&
				e.Info == unix.SCM_TSTAMP_SCHED && e.Data == id
		}
	}
	return stamp, stamped && ours
}

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
