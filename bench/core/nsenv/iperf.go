package nsenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Iperf3Result is what the harness takes from one `iperf3 -c … -J` run,
// as seen from the client that printed it.
type Iperf3Result struct {
	Protocol string // "TCP" or "UDP"
	Streams  int
	Reverse  bool // -R: the server sent, the client received
	// Bidir is --bidir: both sent at once, Streams each way; the byte
	// counts, rates and retransmits are of the client's sending, the
	// Reverse ones of the server's.
	// Seconds is the receiver's measured time; the byte counts and rates
	// are summed over the streams.
	Seconds                          float64
	SentBytes, ReceivedBytes         uint64
	SentGbps, ReceivedGbps           float64
	Retransmits                      int64   // TCP only, as the sender counted them
	HostCPUPercent, RemoteCPUPercent float64 // iperf3's own CPU use: client, server (100 = one core)

	Bidir               bool
	ReverseReceivedGbps float64
	ReverseRetransmits  int64
}

// TotalGbps is what the receivers received, both ways with --bidir.
func (r Iperf3Result) TotalGbps() float64 { return r.ReceivedGbps + r.ReverseReceivedGbps }

// iperf3JSON is the part of iperf3's -J output the harness reads.
type iperf3JSON struct {
	Start struct {
		TestStart struct {
			Protocol   string `json:"protocol"`
			NumStreams int    `json:"num_streams"`
			Reverse    int    `json:"reverse"`
		} `json:"test_start"`
	} `json:"start"`
	End struct {
		SumSent     Iperf3Sum `json:"sum_sent"`
		SumReceived Iperf3Sum `json:"sum_received"`
		// With --bidir (and only then), the server's sending.
		SumSentReverse     *Iperf3Sum `json:"sum_sent_bidir_reverse"`
		SumReceivedReverse *Iperf3Sum `json:"sum_received_bidir_reverse"`
		CPU                struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
	Error string `json:"error"`
}

type Iperf3Sum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         uint64  `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   int64   `json:"retransmits"`
}

// ParseIperf3 reads the JSON iperf3 -J prints. A run that failed (iperf3
// reports "error") or that measured nothing is an error wrapping ErrIperf.
func ParseIperf3(b []byte) (Iperf3Result, error) {
	var j iperf3JSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Iperf3Result{}, fmt.Errorf("%w: %v", ErrIperf, err)
	}
	if j.Error != "" {
		return Iperf3Result{}, fmt.Errorf("%w: iperf3: %s", ErrIperf, j.Error)
	}
	ts, end := j.Start.TestStart, j.End
	r := Iperf3Result{
		Protocol:         ts.Protocol,
		Streams:          ts.NumStreams,
		Reverse:          ts.Reverse != 0,
		Seconds:          end.SumReceived.Seconds,
		SentBytes:        end.SumSent.Bytes,
		ReceivedBytes:    end.SumReceived.Bytes,
		SentGbps:         end.SumSent.BitsPerSecond / 1e9,
		ReceivedGbps:     end.SumReceived.BitsPerSecond / 1e9,
		Retransmits:      end.SumSent.Retransmits,
		HostCPUPercent:   end.CPU.HostTotal,
		RemoteCPUPercent: end.CPU.RemoteTotal,
		Bidir:            end.SumSentReverse != nil && end.SumReceivedReverse != nil,
	}
	if r.Bidir {
		r.ReverseReceivedGbps = end.SumReceivedReverse.BitsPerSecond / 1e9
		r.ReverseRetransmits = end.SumSentReverse.Retransmits
	}
	switch {
	case r.Streams < 1:
		return Iperf3Result{}, fmt.Errorf("%w: no streams", ErrIperf)
	case !(r.Seconds > 0) || math.IsInf(r.Seconds, 0):
		return Iperf3Result{}, fmt.Errorf("%w: no measured time", ErrIperf)
	case !finiteNonNeg(r.SentGbps, r.ReceivedGbps, r.ReverseReceivedGbps, r.HostCPUPercent, r.RemoteCPUPercent) || r.Retransmits < 0 || r.ReverseRetransmits < 0:
		return Iperf3Result{}, fmt.Errorf("%w: negative figures", ErrIperf)
	}
	return r, nil
}

func finiteNonNeg(xs ...float64) bool {
	for _, x := range xs {
		if !(x >= 0) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// ErrIperf is wrapped when iperf3's JSON output cannot be read.
var ErrIperf = errors.New("bench: bad iperf3 output")
