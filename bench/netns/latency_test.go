package netns

import (
	"slices"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

func TestProbeTally(t *testing.T) {
	var p probeTally
	for range 5 {
		p.request()
	}
	const ms = 1_000_000
	p.answer(0, 1*ms, 1*ms, 3*ms, 4*ms)   // 1 ms in the network, 3 ms in the app
	p.answer(0, 1*ms, 0, 9*ms, 9*ms)      // a duplicate
	p.answer(2, 5*ms, 0, 5*ms+ms/2, 6*ms) // 0.5 ms, 1 ms in the app
	p.answer(7, 0, 0, 1, 1)               // never sent
	p.answer(3, 9, 0, 8, 8)               // back before it left: not an answer
	p.answer(4, 1*ms, 3*ms, 3*ms, 3*ms)   // held longer than it was away
	p.answer(1, 1*ms, 0, 3*ms, 2*ms)      // read before it arrived
	if p.r.Sent != 5 || p.r.Received != 2 || !slices.Equal(p.r.RTTs, []float64{1, 0.5}) ||
		!slices.Equal(p.r.AppRTTs, []float64{3, 1}) {
		t.Fatalf("%+v", p.r)
	}

	// With the kernel's stamps of the sends: the round trip counts from
	// there, the app round trip still from the clock read; a stamp that
	// cannot be (before the clock read, or later than the answer allows)
	// is passed over.
	var q probeTally
	for range 4 {
		q.request()
	}
	q.left(0, 2*ms)                     // the sender was held 1 ms before its packet left
	q.left(1, ms/2)                     // before the clock read: passed over
	q.left(2, 4*ms)                     // later than arrival less turnaround: passed over
	q.left(9, 1*ms)                     // never sent: ignored
	q.answer(0, 1*ms, 1*ms, 5*ms, 6*ms) // 2 ms from the stamp, 5 ms in the app
	q.answer(1, 1*ms, 0, 2*ms, 2*ms)    // 1 ms, from the clock read
	q.answer(2, 1*ms, 1*ms, 4*ms, 4*ms) // 2 ms, from the clock read
	q.answer(3, 1*ms, 0, 3*ms, 3*ms)    // no stamp: 2 ms
	if q.r.Received != 4 || !slices.Equal(q.r.RTTs, []float64{2, 1, 2, 2}) || !slices.Equal(q.r.AppRTTs, []float64{5, 1, 3, 2}) {
		t.Fatalf("with send stamps: %+v", q.r)
	}

	// With the echo server's stamps of its answers' sends, which later
	// answers carry: the round trip is timed again without the server's
	// wait after its clock read; a stamp that cannot be is passed over.
	q.held(0, 1500*time.Microsecond) // held 0.5 ms longer than the answer said: 1.5 ms
	q.held(1, 2*ms)                  // longer than the answer was away: passed over
	q.held(2, ms/2)                  // shorter than the turnaround the answer carried: passed over
	q.held(3, ms/2)                  // 1.5 ms
	q.held(4, 0)                     // never answered: ignored
	if !slices.Equal(q.r.RTTs, []float64{1.5, 1, 2, 1.5}) || !slices.Equal(q.r.AppRTTs, []float64{5, 1, 3, 2}) {
		t.Fatalf("with the server's send stamps: %+v", q.r)
	}
}

func TestProbeRequestAnswer(t *testing.T) {
	b := make([]byte, probePayload)
	probeRequest(b, 77, 123456789)
	if seq, sent, turnaround, ok := probeAnswer(b); !ok || seq != 77 || sent != 123456789 || turnaround != 0 {
		t.Fatalf("read back %d, %d, %v, %v", seq, sent, turnaround, ok)
	}
	probeTurnaround(b, 42*time.Microsecond)
	if seq, sent, turnaround, ok := probeAnswer(b); !ok || seq != 77 || sent != 123456789 || turnaround != 42*time.Microsecond {
		t.Fatalf("with turnaround, read back %d, %d, %v, %v", seq, sent, turnaround, ok)
	}
	if _, _, ok := probeHeldOf(b); ok {
		t.Fatal("an answer that carries no earlier one's stamp read as one that does")
	}
	probeHeldBefore(b, 76, 51*time.Microsecond)
	if seq, held, ok := probeHeldOf(b); !ok || seq != 76 || held != 51*time.Microsecond {
		t.Fatalf("the earlier answer's stamp read back as %d, %v, %v", seq, held, ok)
	}
	if seq, sent, turnaround, ok := probeAnswer(b); !ok || seq != 77 || sent != 123456789 || turnaround != 42*time.Microsecond {
		t.Fatalf("with an earlier answer's stamp, read back %d, %d, %v, %v", seq, sent, turnaround, ok)
	}
	for _, n := range []int{0, 12, probePayload - 1, probePayload + 1} {
		if _, _, _, ok := probeAnswer(make([]byte, n)); ok {
			t.Errorf("%d bytes read as an answer", n)
		}
		other := make([]byte, n)
		probeTurnaround(other, time.Second)
		probeHeldBefore(other, 1, time.Second)
		if slices.ContainsFunc(other, func(c byte) bool { return c != 0 }) {
			t.Errorf("%d bytes: the echo server wrote into a datagram that is not a request", n)
		}
	}
}

// FuzzProbeAnswer feeds arbitrary datagrams to the probe's reader and
// tally: nothing panics, only a whole request reads as an answer, and an
// answer counts at most once, only for a request that went out, and
// never with a negative round trip.
func FuzzProbeAnswer(f *testing.F) {
	req := make([]byte, probePayload)
	probeRequest(req, 1, 5)
	f.Add(req, int64(10), int64(12))
	f.Add([]byte{}, int64(0), int64(0))
	f.Add(make([]byte, probePayload+1), int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, arrived, read int64) {
		var p probeTally
		p.request()
		p.request()
		seq, sent, turnaround, ok := probeAnswer(b)
		if ok != (len(b) == probePayload) {
			t.Fatalf("%d bytes: ok %v", len(b), ok)
		}
		if !ok {
			return
		}
		p.answer(seq, sent, turnaround, arrived, read)
		p.answer(seq, sent, turnaround, arrived, read)
		if hseq, held, ok := probeHeldOf(b); ok {
			p.held(hseq, held)
		}
		if p.r.Received > 1 || len(p.r.RTTs) != p.r.Received || len(p.r.AppRTTs) != p.r.Received {
			t.Fatalf("seq %d: %+v", seq, p.r)
		}
		if p.r.Received == 1 && (seq >= 2 || p.r.RTTs[0] < 0 || p.r.AppRTTs[0] < p.r.RTTs[0]) {
			t.Fatalf("seq %d sent %d turnaround %v arrived %d read %d: %+v", seq, sent, turnaround, arrived, read, p.r)
		}
		if seq < 2 && sent >= 0 && turnaround >= 0 && arrived >= sent && read >= arrived &&
			int64(turnaround) <= arrived-sent && p.r.Received != 1 {
			t.Fatalf("a possible answer was not counted: sent %d turnaround %v arrived %d read %d", sent, turnaround, arrived, read)
		}
	})
}

// latSampleOf is a sample row: throughput, ping and probe round trips,
// and the path's beside the tunnel a tenth of the ping's and the probe's.
func latSampleOf(gbps float64, ping, probe []float64) latSample {
	tenth := func(rtts []float64) []float64 {
		out := make([]float64, len(rtts))
		for i, v := range rtts {
			out[i] = v / 10
		}
		return out
	}
	return latSample{Gbps: gbps, Ping: nsenv.PingResult{Sent: len(ping) + 1, Received: len(ping), RTTs: ping},
		Probe:     probeResult{Sent: len(probe) + 2, Received: len(probe), RTTs: probe},
		Path:      nsenv.PingResult{Sent: len(ping), Received: len(ping), RTTs: tenth(ping)},
		PathProbe: probeResult{Sent: len(probe), Received: len(probe), RTTs: tenth(probe)}}
}

// TestSummarizeLatency: the repeats' series pool, the throughput is their
// median, and the loaded rows' p99 above the idle p50 is the worse of
// ping's and the probe's.
func TestSummarizeLatency(t *testing.T) {
	mk := func(idle, out float64) netnsSample {
		var s netnsSample
		s.Latency[0] = latSampleOf(0, []float64{idle, idle}, []float64{idle + 0.1})
		s.Latency[1] = latSampleOf(out, []float64{1, 2, 3}, []float64{4})
		s.Latency[2] = latSampleOf(out+1, []float64{1}, []float64{1})
		s.Latency[3] = latSampleOf(out+2, []float64{9}, []float64{1})
		return s
	}
	rows := summarizeLatency(4, []netnsSample{mk(0.5, 1), mk(0.5, 3)})
	if len(rows) != numLatencyLoads || rows[0].Streams != 0 || rows[1].Streams != 4 || rows[1].Load != core.Outbound || rows[3].Load != core.Both {
		t.Fatalf("rows %+v", rows)
	}
	if rows[1].Gbps != 2 || rows[0].Gbps != 0 || rows[3].Gbps != 4 {
		t.Errorf("throughput medians %v, %v, %v", rows[0].Gbps, rows[1].Gbps, rows[3].Gbps)
	}
	if p := rows[1].Ping; p.Sent != 8 || p.Received != 6 || p.P50Ms != 2 || p.P99Ms != 3 || p.P999Ms != 3 {
		t.Errorf("outbound ping %+v", p)
	}
	if p := rows[1].Probe; p.Sent != 6 || p.Received != 2 || p.Lost() != 4 || p.P50Ms != 4 {
		t.Errorf("outbound probe %+v", p)
	}
	if p := rows[1].Path; p.Sent != 6 || p.Received != 6 || p.P50Ms != 0.2 || p.P99Ms != 0.3 {
		t.Errorf("outbound path %+v", p)
	}
	if p := rows[1].PathProbe; p.Sent != 2 || p.Received != 2 || p.P50Ms != 0.4 || p.P99Ms != 0.4 {
		t.Errorf("outbound path probe %+v", p)
	}
	// Ping: 3 - 0.5; probe: 4 - 0.6. The probe's is worse.
	if got := aboveIdle(rows[0], rows[1]); got < 3.39 || got > 3.41 {
		t.Errorf("outbound above idle %v, want 3.4", got)
	}
	if got := aboveIdle(rows[0], rows[3]); got != 8.5 {
		t.Errorf("both above idle %v, want 8.5 (ping's)", got)
	}
	if summarizeLatency(4, nil) != nil {
		t.Error("rows from no samples")
	}
}

// TestAboveIdleLines: the summary lines keep their fixed form, values
// right-aligned under the loads' names, for the three tunnels as they
// ship (queue management on), not for the ones with it off.
func TestAboveIdleLines(t *testing.T) {
	row := func(load core.Direction, ping, probe float64) LatencyRow {
		return LatencyRow{Load: load, Ping: Latency{P50Ms: ping, P99Ms: ping}, Probe: Latency{P50Ms: probe, P99Ms: probe}}
	}
	rows := func(out, in, both float64) []LatencyRow {
		return []LatencyRow{row("idle", 0.5, 0.5), row(core.Outbound, 0.5+out, 0), row(core.Inbound, 0.5+in, 0), row(core.Both, 0.5+both, 0)}
	}
	nr := &Report{Runs: []Run{
		{Impl: core.ImplPipeGuard, Engine: "sequential", Latency: rows(1, 2, 3)},
		{Impl: core.ImplPipeGuard, Engine: "sequential", Unmanaged: true, Latency: rows(10, 20, 30)},
		{Impl: core.ImplPipeGuard, Engine: "pipeline", Latency: rows(0.25, 0.5, 0.75)},
		{Impl: core.ImplWireguardGo, Latency: rows(12.5, 13, 14)},
	}}
	var b strings.Builder
	nr.writeAboveIdle(&b)
	want := "" +
		"loaded latency (ms above idle p50, p99)   outbound  inbound  both\n" +
		"pipeline                                      0.25     0.50  0.75\n" +
		"sequential                                    1.00     2.00  3.00\n" +
		"wireguard-go                                 12.50    13.00 14.00\n"
	if got := b.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestAbovePathLines: what the tunnel adds is its loaded ping's and
// probe's p50 and p99 less the path's beside it, for the tunnels as they
// ship; a row whose path series got no answer prints a dash, not a
// figure.
func TestAbovePathLines(t *testing.T) {
	row := func(load core.Direction, ping, path float64, pathAnswered int) LatencyRow {
		return LatencyRow{Load: load, Ping: Latency{P50Ms: ping, P99Ms: 2 * ping},
			Path:         Latency{Sent: 10, Received: pathAnswered, P50Ms: path, P99Ms: 2 * path},
			Probe:        Latency{P50Ms: ping + 1, P99Ms: 3 * ping},
			PathProbe:    Latency{Sent: 10, Received: 10, P50Ms: path + 0.5, P99Ms: 3 * path},
			ProbeApp:     Latency{P50Ms: ping + 2, P99Ms: 4 * ping},
			PathProbeApp: Latency{Sent: 10, Received: 10, P50Ms: path + 1, P99Ms: 4 * path}}
	}
	nr := &Report{Runs: []Run{
		{Impl: core.ImplPipeGuard, Engine: "pipeline", Latency: []LatencyRow{row("idle", 0.5, 0.25, 10),
			row(core.Outbound, 9, 8, 10), row(core.Inbound, 8, 8.5, 10), row(core.Both, 12, 0, 0)}},
		{Impl: core.ImplPipeGuard, Engine: "pipeline", Unmanaged: true, Latency: []LatencyRow{row("idle", 0.5, 0.25, 10),
			row(core.Outbound, 90, 8, 10), row(core.Inbound, 90, 8, 10), row(core.Both, 90, 8, 10)}},
	}}
	var b strings.Builder
	nr.writeAbovePath(&b)
	got := squeeze(b.String())
	want := "added by the tunnel (ping ms above path, p50 / p99) outbound inbound both\n" +
		"pipeline 1.00/2.00 -0.50/-1.00 -\n" +
		"added by the tunnel (probe ms above path, p50 / p99) outbound inbound both\n" +
		"pipeline 1.50/3.00 0.00/-1.50 12.50/36.00\n" +
		"added by the tunnel (probe app ms above path, p50 / p99) outbound inbound both\n" +
		"pipeline 2.00/4.00 0.50/-2.00 13.00/48.00\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
