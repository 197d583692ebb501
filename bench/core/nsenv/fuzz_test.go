package nsenv

import (
	"math"
	"testing"
)

// FuzzParseIperf3: any input is parsed or refused with ErrIperf, never a
// panic, and what is accepted has sane figures.
func FuzzParseIperf3(f *testing.F) {
	for _, name := range []string{"iperf3-1stream.json", "iperf3-4streams-reverse.json", "iperf3-2streams-bidir.json", "iperf3-refused.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`{"start":{"test_start":{"num_streams":1}},"end":{"sum_received":{"seconds":1e308,"bits_per_second":1e308}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseIperf3(b)
		if err != nil {
			return
		}
		if r.Streams < 1 || !(r.Seconds > 0) || math.IsInf(r.Seconds, 0) || !finiteNonNeg(r.SentGbps, r.ReceivedGbps, r.ReverseReceivedGbps) || r.Retransmits < 0 || r.ReverseRetransmits < 0 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// FuzzParsePing: any input is parsed or refused with ErrPing, never a
// panic; what is accepted is consistent and gives finite percentiles.
func FuzzParsePing(f *testing.F) {
	for _, name := range []string{"ping-loopback.txt", "ping-lost.txt"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("64 bytes from a: icmp_seq=1 time=1e400 ms\n1 packets transmitted, 1 received\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParsePing(b)
		if err != nil {
			return
		}
		if r.Received != len(r.RTTs) || r.Received > r.Sent || r.Sent < 0 {
			t.Fatalf("accepted %+v", r)
		}
		rtt := r.RTT()
		if !finiteNonNeg(rtt.P50Ms, rtt.P99Ms) || rtt.P50Ms > rtt.P99Ms {
			t.Fatalf("RTT %+v from %+v", rtt, r)
		}
	})
}
