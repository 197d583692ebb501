package nsenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"pipeguard/bench/core"
)

// PingResult is what the harness takes from the output of iputils ping
// (without -q): every reply's round-trip time, and the counts of the
// closing summary.
type PingResult struct {
	Sent, Received int
	RTTs           []float64 // milliseconds, in the order the replies came
}

// ParsePing reads ping's output. Duplicate replies are not counted. The
// summary line is required, and so is one reply line per reply it counts:
// output cut short, or from ping -q, is an error wrapping ErrPing.
func ParsePing(b []byte) (PingResult, error) {
	var r PingResult
	summary := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, " bytes from "); ok && !strings.Contains(rest, "(DUP!)") {
			_, t, ok := strings.Cut(rest, " time=")
			if !ok {
				continue // a reply without a time: ping prints none for tiny payloads
			}
			t, _, _ = strings.Cut(t, " ")
			ms, err := strconv.ParseFloat(t, 64)
			if err != nil || !(ms >= 0) || math.IsInf(ms, 0) {
				return PingResult{}, fmt.Errorf("%w: bad time in %q", ErrPing, line)
			}
			r.RTTs = append(r.RTTs, ms)
			continue
		}
		// "20 packets transmitted, 20 received, 0% packet loss, time 303ms"
		if sent, rest, ok := strings.Cut(line, " packets transmitted, "); ok {
			recv, _, _ := strings.Cut(rest, " received")
			var err1, err2 error
			r.Sent, err1 = strconv.Atoi(sent)
			r.Received, err2 = strconv.Atoi(recv)
			if err1 != nil || err2 != nil || r.Sent < 0 || r.Received < 0 {
				return PingResult{}, fmt.Errorf("%w: bad summary %q", ErrPing, line)
			}
			summary = true
		}
	}
	if err := sc.Err(); err != nil {
		return PingResult{}, fmt.Errorf("%w: %v", ErrPing, err)
	}
	switch {
	case !summary:
		first, _, _ := bytes.Cut(b, []byte("\n"))
		return PingResult{}, fmt.Errorf("%w: no summary (%q)", ErrPing, first)
	case r.Received != len(r.RTTs):
		return PingResult{}, fmt.Errorf("%w: %d replies counted, %d reply lines", ErrPing, r.Received, len(r.RTTs))
	case r.Received > r.Sent:
		return PingResult{}, fmt.Errorf("%w: more replies than requests", ErrPing)
	}
	return r, nil
}

// RTT summarises the round-trip times: p50 and p99 by nearest rank.
func (p PingResult) RTT() core.RTT {
	return core.RTT{Sent: p.Sent, Received: p.Received, P50Ms: core.Percentile(p.RTTs, 50), P99Ms: core.Percentile(p.RTTs, 99)}
}

// ErrPing is wrapped when ping's output cannot be read.
var ErrPing = errors.New("bench: bad ping output")
