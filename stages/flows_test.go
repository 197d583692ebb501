package stages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pipeguard/wire"
)

// host is a tunnel's inner addresses, one per family.
type host struct{ v4, v6 netip.Addr }

// flowSize is the size of packet seq of a flow: it sweeps the whole range
// from the smallest IPv4 packet (20 bytes) to the MTU, with both extremes
// often.
func flowSize(seq uint32) int {
	switch {
	case seq%7 == 0:
		return wire.MaxInnerSize
	case seq%11 == 0:
		return 20
	}
	return 20 + int((seq*2654435761)>>8)%(wire.MaxInnerSize-20+1)
}

// flowPacket writes packet seq of the flow from → to into buf and returns
// it: every third packet is IPv6, the others IPv4, and the size varies
// with seq (flowSize). seq is in the header (IPv4: identification and
// checksum fields, so even a bare 20-byte header carries it) or the first
// payload bytes (IPv6); the rest of the payload is a function of seq, so a
// receiver can rebuild the packet it expects and compare every byte.
func flowPacket(buf []byte, from, to host, seq uint32) []byte {
	size := flowSize(seq)
	if seq%3 == 1 {
		size = max(size, wire.IPv6HeaderSize+4)
		b := buf[:size]
		clear(b[:wire.IPv6HeaderSize])
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], uint16(size-wire.IPv6HeaderSize))
		b[6], b[7] = 17, 64
		s, d := from.v6.As16(), to.v6.As16()
		copy(b[8:24], s[:])
		copy(b[24:40], d[:])
		binary.BigEndian.PutUint32(b[40:], seq)
		for i := 44; i < size; i++ {
			b[i] = byte(seq>>3) ^ byte(i)
		}
		return b
	}
	b := buf[:size]
	clear(b[:wire.IPv4HeaderMinSize])
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(size))
	binary.BigEndian.PutUint16(b[4:], uint16(seq>>16))
	b[8], b[9] = 64, 17
	binary.BigEndian.PutUint16(b[10:], uint16(seq))
	s, d := from.v4.As4(), to.v4.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	for i := 20; i < size; i++ {
		b[i] = byte(seq) ^ byte(i)
	}
	return b
}

// flowSeq reads the sequence number flowPacket put in p.
func flowSeq(p []byte) uint32 {
	if p[0]>>4 == 6 {
		return binary.BigEndian.Uint32(p[40:])
	}
	return uint32(binary.BigEndian.Uint16(p[4:]))<<16 | uint32(binary.BigEndian.Uint16(p[10:]))
}

// flowSrc is the inner source address of p.
func flowSrc(p []byte) netip.Addr {
	ip, err := wire.PeekIP(p)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Src
}

// sendFlows injects packets first..first+n-1 of the flows from → each of
// tos into e's TUN device, interleaved (packet seq of every flow, then
// seq+1 ...), in batches, from the calling goroutine.
func sendFlows(e *end, from host, tos []host, first, n uint32) error {
	return streamFlows(e, from, tos, first, n, nil)
}

// streamFlows is sendFlows that also returns early, with a nil error,
// once stop (which may be nil) is closed.
func streamFlows(e *end, from host, tos []host, first, n uint32, stop <-chan struct{}) error {
	const batch = 32
	var bufs [batch][wire.MaxInnerSize]byte
	pkts := make([][]byte, 0, batch)
	flush := func() error {
		select {
		case <-stop:
			return errStopped
		default:
		}
		err := e.dev.InjectBatch(pkts)
		pkts = pkts[:0]
		return err
	}
	for seq := first; seq < first+n; seq++ {
		for _, to := range tos {
			pkts = append(pkts, flowPacket(bufs[len(pkts)][:], from, to, seq))
			if len(pkts) == batch {
				if err := flush(); err != nil {
					return ignoreStopped(err)
				}
			}
		}
	}
	if len(pkts) > 0 {
		return ignoreStopped(flush())
	}
	return nil
}

var errStopped = errors.New("stopped")

func ignoreStopped(err error) error {
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// flowChecker reads what a tunnel writes to its TUN device and checks,
// per sending host, that packets arrive complete, byte for byte, in order
// and without duplicates. With gaps allowed it accepts missing packets
// (and records them); without, the first gap is an error.
type flowChecker struct {
	to       host
	from     map[netip.Addr]int // inner source address → sender
	senders  []host
	gaps     bool
	mu       sync.Mutex // guards the fields below
	next     []uint32   // next expected seq per sender
	got      []int      // packets received per sender
	missing  [][]uint32 // seqs skipped per sender (gaps allowed)
	err      error      // first error
	progress chan struct{}
	done     chan struct{}
}

// checkFlows starts a flowChecker on e's TUN output for packets from the
// senders to host to. It stops when e's device closes.
func checkFlows(e *end, to host, senders []host, gaps bool) *flowChecker {
	return newFlowChecker(to, senders, gaps).watch(e)
}

// seen records that the first n packets of sender i arrived already
// (before the checker watched); call it before watch.
func (c *flowChecker) seen(i int, n uint32) *flowChecker {
	c.next[i], c.got[i] = n, int(n)
	return c
}

// watch starts checking what e writes to its TUN device, until the
// device closes.
func (c *flowChecker) watch(e *end) *flowChecker {
	go func() {
		defer close(c.done)
		var want [wire.MaxInnerSize]byte
		for {
			select {
			case p := <-e.dev.Outbound():
				c.check(p.Bytes(), want[:])
			case <-e.dev.Done():
				return
			}
		}
	}()
	return c
}

func newFlowChecker(to host, senders []host, gaps bool) *flowChecker {
	c := &flowChecker{to: to, from: map[netip.Addr]int{}, senders: senders, gaps: gaps,
		next: make([]uint32, len(senders)), got: make([]int, len(senders)), missing: make([][]uint32, len(senders)),
		progress: make(chan struct{}, 1), done: make(chan struct{})}
	for i, h := range senders {
		c.from[h.v4], c.from[h.v6] = i, i
	}
	return c
}

func (c *flowChecker) check(p, scratch []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		select {
		case c.progress <- struct{}{}:
		default:
		}
	}()
	if c.err != nil {
		return
	}
	i, ok := c.from[flowSrc(p)]
	if !ok {
		c.err = fmt.Errorf("packet of %d bytes from unknown source %v", len(p), flowSrc(p))
		return
	}
	seq, next := flowSeq(p), c.next[i]
	switch {
	case seq < next:
		c.err = fmt.Errorf("sender %d: seq %d after %d: reordered or duplicated", i, seq, next-1)
		return
	case seq > next && !c.gaps:
		c.err = fmt.Errorf("sender %d: seq %d where %d was due: lost or reordered", i, seq, next)
		return
	}
	for s := next; s < seq; s++ {
		c.missing[i] = append(c.missing[i], s)
	}
	if want := flowPacket(scratch, c.senders[i], c.to, seq); !bytes.Equal(p, want) {
		c.err = fmt.Errorf("sender %d seq %d: %d bytes arrived differing from the %d sent", i, seq, len(p), len(want))
		return
	}
	c.next[i] = seq + 1
	c.got[i]++
}

// wait waits until sender i's packets up to seq last-1 have been seen (or
// skipped, with gaps allowed), or fails the test once the stream stalls
// for stall.
func (c *flowChecker) wait(t testing.TB, i int, last uint32, stall time.Duration, stats func() string) {
	t.Helper()
	for {
		c.mu.Lock()
		next, err := c.next[i], c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("%v\nstats:\n%s", err, stats())
		}
		if next >= last {
			return
		}
		select {
		case <-c.progress:
		case <-time.After(stall):
			t.Fatalf("sender %d: stalled at seq %d of %d for %v\nstats:\n%s", i, next, last, stall, stats())
		}
	}
}

// reached waits until sender i's packets up to seq last-1 have been seen,
// for up to within, and says whether they were; it does not fail the test,
// so any goroutine may call it (one at a time per checker).
func (c *flowChecker) reached(i int, last uint32, within time.Duration) bool {
	deadline := time.After(within)
	for {
		c.mu.Lock()
		next, err := c.next[i], c.err
		c.mu.Unlock()
		if err != nil || next >= last {
			return err == nil
		}
		select {
		case <-c.progress:
		case <-deadline:
			return false
		}
	}
}

// result returns packets received and seqs missing from sender i, and the
// first error seen.
func (c *flowChecker) result(i int) (got int, missing []uint32, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[i], append([]uint32(nil), c.missing[i]...), c.err
}
