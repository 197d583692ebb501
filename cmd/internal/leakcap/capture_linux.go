package leakcap

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records what one interface sends, from Open until Close. Its
// methods are safe for concurrent use.
type Capture struct {
	fd     int
	filter Filter
	done   chan struct{} // closed by the reader goroutine when it returns

	mu     sync.Mutex // guards the fields below
	sent   int        // frames the interface sent
	leaks  []Packet   // the first maxKept leaks
	nLeaks int        // every leak
	stopAt time.Time  // when Close was called; zero before
}

// maxKept is how many leaked packets a Capture keeps for the report;
// it counts every one.
const maxKept = 50

// pollEvery is how often the reader looks whether Close was called while
// nothing arrives.
const pollEvery = 50 * time.Millisecond

// captureBuffer is the socket's receive buffer: at the few thousand
// packets a second of a test, a second's worth and more.
const captureBuffer = 8 << 20

// Open starts capturing the frames the interface ifname sends. The
// socket belongs to the network namespace of the calling thread, so a
// test calls Open inside that namespace (netnstest's ns.Do); the capture
// goes on from another goroutine, stopped by Close.
func Open(ifname string, f Filter) (*Capture, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("leakcap: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("leakcap: packet socket: %w", err)
	}
	fail := func(what string, err error) (*Capture, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("leakcap: %s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer); err != nil {
		return fail("receive buffer", err)
	}
	tv := unix.NsecToTimeval(pollEvery.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("receive timeout", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind to "+ifname, err)
	}
	c := &Capture{fd: fd, filter: f, done: make(chan struct{})}
	go c.read()
	return c, nil
}

// drainFor bounds how long Close waits for the frames still queued in
// the socket, on an interface that goes on sending.
const drainFor = time.Second

// read takes frames until Close, and then those already queued; it
// closes c.done when it returns.
func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		c.mu.Lock()
		stopAt := c.stopAt
		c.mu.Unlock()
		if !stopAt.IsZero() && (err != nil || time.Since(stopAt) > drainFor) {
			return
		}
		if err != nil {
			continue // the poll timeout (EAGAIN), or EINTR
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING {
			continue
		}
		p, err := Classify(buf[:n])
		leak := err != nil || c.filter.Leak(p)
		c.mu.Lock()
		c.sent++
		if leak {
			c.nLeaks++
			if len(c.leaks) < maxKept {
				c.leaks = append(c.leaks, p)
			}
		}
		c.mu.Unlock()
	}
}

// Result is a capture's count.
type Result struct {
	Sent     int      // frames the interface sent
	Leaked   int      // of them, leaks
	Examples []Packet // the first leaks, up to 50
	Dropped  uint32   // frames the socket lost (its buffer was full): a capture with drops proves nothing
}

// Count is the result so far.
func (c *Capture) Count() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Result{Sent: c.sent, Leaked: c.nLeaks, Examples: append([]Packet(nil), c.leaks...)}
}

// Close stops the capture once it has read what the socket holds, and
// returns the result.
func (c *Capture) Close() (Result, error) {
	c.mu.Lock()
	c.stopAt = time.Now()
	c.mu.Unlock()
	<-c.done
	stats, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	unix.Close(c.fd)
	r := c.Count()
	if err != nil {
		return r, fmt.Errorf("leakcap: statistics: %w", err)
	}
	r.Dropped = stats.Drops
	if r.Dropped > 0 {
		return r, fmt.Errorf("%w: %d frames", ErrDropped, r.Dropped)
	}
	return r, nil
}

// ErrDropped means the capture lost frames, so its count of leaks may be
// short.
var ErrDropped = errors.New("leakcap: the capture dropped frames")

// htons is the network byte order the packet socket wants its protocol in.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
