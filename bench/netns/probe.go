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
// from the request's send (the sender's kernel stamp of it, where it
// has one: sendStamps) to the answer's arrival in the sender's kernel
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
// its turnaround after them, and after that, as PTP's two-step clocks
// send a follow-up, how long it held the request it answered before
// (by its sequence number) with the answer's send as its kernel stamped
// it, which it learns only once that answer is gone; it sends the rest
// back as it came.
const (
	probeSeqAt        = 0
	probeSentAt       = 4
	probeTurnaroundAt = 12
	probeHeldSeqAt    = 20 // the earlier request's sequence number
	probeHeldAt       = 24 // and how long it was held, to its answer's send stamp
	probeHeldSetAt    = 32 // 1: the two fields before say something
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

// probeHeldBefore writes into a request the echo server is about to
// send back how long it held the request seq it answered before it: from
// that one's arrival in its kernel to its answer's send stamp.
func probeHeldBefore(b []byte, seq uint32, held time.Duration) {
	if len(b) == probePayload {
		binary.BigEndian.PutUint32(b[probeHeldSeqAt:], seq)
		binary.BigEndian.PutUint64(b[probeHeldAt:], uint64(max(held, 0)))
		b[probeHeldSetAt] = 1
	}
}

// probeHeldOf reads from an answer what probeHeldBefore wrote; ok is
// false if it wrote nothing.
func probeHeldOf(b []byte) (seq uint32, held time.Duration, ok bool) {
	if len(b) != probePayload || b[probeHeldSetAt] != 1 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b[probeHeldSeqAt:]), time.Duration(binary.BigEndian.Uint64(b[probeHeldAt:])), true
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
	seen []bool       // by sequence number
	out  []int64      // by sequence number: the kernel's stamp of the request's send; 0: none
	at   []probeTimes // by sequence number, of an answer counted
	r    probeResult
}

// probeTimes is what the tally keeps of an answer it counted, to time it
// again with the echo server's stamp of its send (held).
type probeTimes struct {
	from, arrived int64         // the round trip's ends
	turnaround    time.Duration // the echo server's, as the answer carried it
	rtt           int           // its index in r.RTTs
}

// left records the kernel's stamp of request seq's send (realtime
// nanoseconds), which times its round trip from then on rather than
// from the clock read the request carries.
func (p *probeTally) left(seq uint32, at int64) {
	if int(seq) < len(p.out) {
		p.out[seq] = at
	}
}

// answer records the answer to request seq, sent at sent, held by the
// echo server for turnaround, arrived in the sender's kernel at arrived
// and read at read (all three in the sender's nanoseconds); duplicates,
// answers to requests never sent and answers whose times cannot be
// (back before they left, or held longer than they were away) are
// ignored. The round trip counts from the kernel's stamp of the send
// (left), if there is one, else from sent; the app round trip from sent.
func (p *probeTally) answer(seq uint32, sent int64, turnaround time.Duration, arrived, read int64) {
	if int(seq) >= p.r.Sent || p.seen[seq] || sent < 0 || arrived < sent || read < arrived ||
		turnaround < 0 || int64(turnaround) > arrived-sent {
		return
	}
	from := sent
	if out := p.out[seq]; out > sent && out <= arrived-int64(turnaround) {
		from = out
	}
	rtt := arrived - from - int64(turnaround)
	p.seen[seq] = true
	p.at[seq] = probeTimes{from: from, arrived: arrived, turnaround: turnaround, rtt: len(p.r.RTTs)}
	p.r.Received++
	p.r.RTTs = append(p.r.RTTs, float64(rtt)/1e6)
	p.r.AppRTTs = append(p.r.AppRTTs, float64(read-sent)/1e6)
}

// held takes the echo server's stamp of how long it held request seq,
// to its answer's send as its kernel stamped it, which a later answer
// carried (probeHeldOf): the round trip of an answer already counted is
// timed again with it, so that it leaves out the server's own wait
// between reading its clock and its answer leaving, as it leaves out the
// sender's (left). A stamp that cannot be (shorter than the turnaround
// the answer carried, or longer than the answer was away) is passed
// over, as is one for a request not answered.
func (p *probeTally) held(seq uint32, held time.Duration) {
	if int(seq) >= len(p.seen) || !p.seen[seq] {
		return
	}
	t := p.at[seq]
	if held < t.turnaround || int64(held) > t.arrived-t.from {
		return
	}
	p.r.RTTs[t.rtt] = float64(t.arrived-t.from-int64(held)) / 1e6
}

// request records that request seq went out.
func (p *probeTally) request() uint32 {
	seq := uint32(p.r.Sent)
	p.seen = append(p.seen, false)
	p.out = append(p.out, 0)
	p.at = append(p.at, probeTimes{})
	p.r.Sent++
	return seq
}
