package netns

import (
	"encoding/binary"
	"time"
)

// The sparse UDP probe: what a game, a voice call or a DNS lookup sees of
// a tunnel under load. A request of probePayload bytes every
// probeInterval, each answered by an echo server on the far side; each
// answer's round trip is timed from the time the request carries.
const (
	probePayload  = 64
	probeInterval = 10 * time.Millisecond // 100 a second
	probePort     = 5301
	// probeLate is how long the sender waits for the answers to its last
	// requests; one later than that is lost, as ping -W 1 counts it.
	probeLate = time.Second
)

// probeResult is one series: requests sent, distinct answers received,
// and their round trips in milliseconds.
type probeResult struct {
	Sent, Received int
	RTTs           []float64
}

func (a probeResult) pool(b probeResult) probeResult {
	return probeResult{Sent: a.Sent + b.Sent, Received: a.Received + b.Received, RTTs: append(a.RTTs, b.RTTs...)}
}

// probeRequest writes request seq, sent at sent (nanoseconds of the
// sender's monotonic clock), into b, probePayload bytes.
func probeRequest(b []byte, seq uint32, sent int64) {
	clear(b[:probePayload])
	binary.BigEndian.PutUint32(b, seq)
	binary.BigEndian.PutUint64(b[4:], uint64(sent))
}

// probeAnswer reads an answer: the request's sequence number and send
// time; ok is false for anything that is not a whole request echoed.
func probeAnswer(b []byte) (seq uint32, sent int64, ok bool) {
	if len(b) != probePayload {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:])), true
}

// probeTally counts a series' answers, each sequence number once.
type probeTally struct {
	seen []bool // by sequence number
	r    probeResult
}

// answer records the answer to request seq, sent at sent, arriving at
// now (both in the sender's nanoseconds); duplicates and answers to
// requests never sent are ignored.
func (p *probeTally) answer(seq uint32, sent, now int64) {
	if int(seq) >= p.r.Sent || p.seen[seq] || now < sent {
		return
	}
	p.seen[seq] = true
	p.r.Received++
	p.r.RTTs = append(p.r.RTTs, float64(now-sent)/1e6)
}

// request records that request seq went out.
func (p *probeTally) request() uint32 {
	seq := uint32(p.r.Sent)
	p.seen = append(p.seen, false)
	p.r.Sent++
	return seq
}
