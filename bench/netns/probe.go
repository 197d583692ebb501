package netns

import (
	"encoding/binary"
	"time"
)

// The sparse UDP probe: what a game, a voice call or a DNS lookup sees of
// a tunnel under load. A request of probePayload bytes every
// probeInterval, each answered by an echo server on the far side; each
// answer's round trip is timed from the time the request carries.
//
// The round trip is measured as irtt and TWAMP (RFC 5357) measure one:
// from the request's send to the answer's arrival in the sender's kernel
// (its receive timestamp), less the echo server's turnaround (from the
// request's arrival in its kernel to the answer's send), which the
// answer carries. That is the network's and the tunnel's share, the
// same share ping measures (its answers come from the kernel). What the
// two processes add besides, waiting for a core to read and answer on a
// machine the load fills, is the app round trip, kept beside it.
const (
	probePayload  = 64
	probeInterval = 10 * time.Millisecond // 100 a second
	probePort     = 5301
	// probeLate is how long the sender waits for the answers to its last
	// requests; one later than that is lost, as ping -W 1 counts it.
	probeLate = time.Second
)

// probeResult is one series: requests sent, distinct answers received,
// and their round trips in milliseconds: RTTs as the kernels timed them,
// the echo server's turnaround taken out; AppRTTs as the sending process
// saw them.
type probeResult struct {
	Sent, Received int
	RTTs           []float64
	AppRTTs        []float64
}

func (a probeResult) pool(b probeResult) probeResult {
	return probeResult{Sent: a.Sent + b.Sent, Received: a.Received + b.Received,
		RTTs: append(a.RTTs, b.RTTs...), AppRTTs: append(a.AppRTTs, b.AppRTTs...)}
}

// A request is its sequence number and send time; the echo server writes
// its turnaround after them and sends the rest back as it came.
const (
	probeSeqAt        = 0
	probeSentAt       = 4
	probeTurnaroundAt = 12
)

// probeRequest writes request seq, sent at sent (nanoseconds of the
// realtime clock, which the kernel's receive timestamps read), into b,
// probePayload bytes.
func probeRequest(b []byte, seq uint32, sent int64) {
	clear(b[:probePayload])
	binary.BigEndian.PutUint32(b[probeSeqAt:], seq)
	binary.BigEndian.PutUint64(b[probeSentAt:], uint64(sent))
}

// probeTurnaround writes into a request the echo server is about to
// send back how long it held it: from its arrival in the server's kernel
// until now. Anything but a whole request goes back unchanged.
func probeTurnaround(b []byte, held time.Duration) {
	if len(b) == probePayload {
		binary.BigEndian.PutUint64(b[probeTurnaroundAt:], uint64(max(held, 0)))
	}
}

// probeAnswer reads an answer: the request's sequence number, its send
// time and the echo server's turnaround; ok is false for anything that
// is not a whole request echoed.
func probeAnswer(b []byte) (seq uint32, sent int64, turnaround time.Duration, ok bool) {
	if len(b) != probePayload {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(b[probeSeqAt:]), int64(binary.BigEndian.Uint64(b[probeSentAt:])),
		time.Duration(binary.BigEndian.Uint64(b[probeTurnaroundAt:])), true
}

// probeTally counts a series' answers, each sequence number once.
type probeTally struct {
	seen []bool // by sequence number
	r    probeResult
}

// answer records the answer to request seq, sent at sent, held by the
// echo server for turnaround, arrived in the sender's kernel at arrived
// and read at read (all three in the sender's nanoseconds); duplicates,
// answers to requests never sent and answers whose times cannot be
// (back before they left, or held longer than they were away) are
// ignored.
func (p *probeTally) answer(seq uint32, sent int64, turnaround time.Duration, arrived, read int64) {
	if int(seq) >= p.r.Sent || p.seen[seq] || sent < 0 || arrived < sent || read < arrived ||
		turnaround < 0 || int64(turnaround) > arrived-sent {
		return
	}
	rtt := arrived - sent - int64(turnaround)
	p.seen[seq] = true
	p.r.Received++
	p.r.RTTs = append(p.r.RTTs, float64(rtt)/1e6)
	p.r.AppRTTs = append(p.r.AppRTTs, float64(read-sent)/1e6)
}

// request records that request seq went out.
func (p *probeTally) request() uint32 {
	seq := uint32(p.r.Sent)
	p.seen = append(p.seen, false)
	p.r.Sent++
	return seq
}
