package nsenv

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

// Recorded outputs, from the tools on loopback:
//
//	iperf3 -s -p 5299 &
//	iperf3 -c 127.0.0.1 -p 5299 -t 1 -J           > iperf3-1stream.json
//	iperf3 -c 127.0.0.1 -p 5299 -t 1 -P 4 -R -J   > iperf3-4streams-reverse.json
//	iperf3 -c 127.0.0.1 -p 5298 -t 1 -J           > iperf3-refused.json   (no server)
//	ping -c 20 -i 0.01 127.0.0.1                  > ping-loopback.txt
//	ping -c 3 -i 0.2 -W 1 192.0.2.123             > ping-lost.txt         (TEST-NET: no replies)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIperf3Recorded(t *testing.T) {
	for _, tc := range []struct {
		file    string
		streams int
		reverse bool
		// Figures copied from the files' end.sum_sent / sum_received.
		seconds  float64
		sent     uint64
		received uint64
		gbps     float64
	}{
		{"iperf3-1stream.json", 1, false, 1.000098, 2840330240, 2840264651, 22.719890658715446},
		{"iperf3-4streams-reverse.json", 4, true, 1.000037, 1749811200, 1747517387, 13.979621849991549},
	} {
		r, err := ParseIperf3(readTestdata(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if r.Protocol != "TCP" || r.Streams != tc.streams || r.Reverse != tc.reverse || r.Seconds != tc.seconds ||
			r.SentBytes != tc.sent || r.ReceivedBytes != tc.received || math.Abs(r.ReceivedGbps-tc.gbps) > 1e-12 {
			t.Errorf("%s: got %+v", tc.file, r)
		}
		if r.Retransmits != 0 || r.HostCPUPercent <= 0 || r.RemoteCPUPercent <= 0 {
			t.Errorf("%s: retransmits or CPU: %+v", tc.file, r)
		}
		// Received Gbit/s agrees with bytes over seconds.
		if got := float64(r.ReceivedBytes) * 8 / r.Seconds / 1e9; math.Abs(got-r.ReceivedGbps) > 1e-6*got {
			t.Errorf("%s: %v Gbit/s from the bytes, %v reported", tc.file, got, r.ReceivedGbps)
		}
	}
}

// TestParseIperf3Bidir: with --bidir the server's sending is read too,
// and the total is both ways'.
func TestParseIperf3Bidir(t *testing.T) {
	r, err := ParseIperf3(readTestdata(t, "iperf3-2streams-bidir.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Figures copied from the file's end.sum_received, sum_sent and
	// their _bidir_reverse twins.
	if !r.Bidir || r.Streams != 2 || r.Retransmits != 3 || r.ReverseRetransmits != 0 ||
		math.Abs(r.ReceivedGbps-14.887451857842476) > 1e-12 || math.Abs(r.ReverseReceivedGbps-15.245503650786518) > 1e-12 ||
		math.Abs(r.TotalGbps()-(14.887451857842476+15.245503650786518)) > 1e-9 {
		t.Fatalf("got %+v", r)
	}
	one, err := ParseIperf3(readTestdata(t, "iperf3-1stream.json"))
	if err != nil || one.Bidir || one.ReverseReceivedGbps != 0 || one.TotalGbps() != one.ReceivedGbps {
		t.Fatalf("one way read as bidir: %+v, %v", one, err)
	}
}

func TestParseIperf3Errors(t *testing.T) {
	_, err := ParseIperf3(readTestdata(t, "iperf3-refused.json"))
	if !errors.Is(err, ErrIperf) || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("refused: err %v", err)
	}
	for _, in := range []string{
		``, `{`, `[]`, `{"start":{}}`,
		`{"start":{"test_start":{"num_streams":1}},"end":{"sum_received":{"seconds":0}}}`,
		`{"start":{"test_start":{"num_streams":1}},"end":{"sum_received":{"seconds":1,"bytes":-5}}}`,
		`{"start":{"test_start":{"num_streams":1}},"end":{"sum_received":{"seconds":1,"bits_per_second":-1}}}`,
	} {
		if _, err := ParseIperf3([]byte(in)); !errors.Is(err, ErrIperf) {
			t.Errorf("%q: err %v, want ErrIperf", in, err)
		}
	}
}

func TestParsePingRecorded(t *testing.T) {
	r, err := ParsePing(readTestdata(t, "ping-loopback.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 20 || r.Received != 20 || len(r.RTTs) != 20 {
		t.Fatalf("got %+v", r)
	}
	// The summary says min 0.023, max 0.081 ms.
	lo, hi := math.Inf(1), 0.0
	for _, v := range r.RTTs {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo != 0.023 || hi != 0.081 {
		t.Errorf("min %v max %v, ping said 0.023 and 0.081", lo, hi)
	}
	rtt := r.RTT()
	if rtt.P99Ms != 0.081 || rtt.P50Ms < lo || rtt.P50Ms > hi || rtt.Sent != 20 || rtt.Received != 20 {
		t.Errorf("RTT %+v", rtt)
	}

	lost, err := ParsePing(readTestdata(t, "ping-lost.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if lost.Sent != 3 || lost.Received != 0 || len(lost.RTTs) != 0 || lost.RTT().P50Ms != 0 {
		t.Errorf("lost: %+v", lost)
	}
}

func TestParsePingCases(t *testing.T) {
	const sum = "\n--- x ping statistics ---\n2 packets transmitted, 2 received, +1 duplicates, 0% packet loss, time 1ms\n"
	r, err := ParsePing([]byte("64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=1.5 ms\n" +
		"64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=1.6 ms (DUP!)\n" +
		"64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=2.5 ms\n" + sum))
	if err != nil || len(r.RTTs) != 2 || r.RTTs[0] != 1.5 || r.RTTs[1] != 2.5 {
		t.Errorf("duplicates: %+v %v", r, err)
	}
	for _, in := range []string{
		"",
		"ping: connect: Network is unreachable\n",
		"64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=1.5 ms\n",                                     // no summary: cut short
		"--- x ---\n2 packets transmitted, 2 received, 0% packet loss\n",                              // ping -q: no reply lines
		"64 bytes from a: time=x ms\n1 packets transmitted, 1 received\n",                             // bad time
		"64 bytes from a: time=-1 ms\n1 packets transmitted, 1 received\n",                            // negative
		"64 bytes from a: time=1 ms\n64 bytes from a: time=1 ms\n1 packets transmitted, 2 received\n", // more replies than sent
		"x packets transmitted, 1 received\n",
	} {
		if _, err := ParsePing([]byte(in)); !errors.Is(err, ErrPing) {
			t.Errorf("%q: err %v, want ErrPing", in, err)
		}
	}
}
