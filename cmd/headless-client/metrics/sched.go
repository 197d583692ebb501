package metrics

import (
	"math"
	rtmetrics "runtime/metrics"
	"sync"
	"time"

	"pipeguard/stages/fq"
)

// schedLatencyKey is the runtime's histogram of the time goroutines
// spent ready to run before they ran: waiting for a P of their own
// process, or for the thread of that P to get a CPU back from the
// kernel. Under load a packet waits in the managed queue for the
// goroutine that takes from it; this says how much of that wait was the
// scheduler's.
const schedLatencyKey = "/sched/latencies:seconds"

// writeSchedLatency exports the runtime's scheduling latency as
// go_sched_latencies_seconds (the name Prometheus's Go collector uses),
// its many fine buckets folded into the managed queues' sojourn bounds,
// so that the two histograms compare bucket by bucket. A runtime bucket
// that straddles a bound counts below it if it starts below it: the
// runtime's buckets are narrow (a few percent of their value) at these
// times. The runtime keeps no sum; the sum exported adds each bucket's
// lower bound, so it is a lower bound.
func writeSchedLatency(e *encoder) {
	var buckets [len(fq.SojournBounds) + 1]uint64
	schedSample.Lock()
	rtmetrics.Read(schedSample.s[:])
	v := schedSample.s[0].Value
	if v.Kind() != rtmetrics.KindFloat64Histogram {
		schedSample.Unlock()
		return // unknown to this Go version
	}
	count, sum := foldLatencies(v.Float64Histogram(), fq.SojournBounds[:], buckets[:])
	schedSample.Unlock()
	const name = "go_sched_latencies_seconds"
	e.family(name, "histogram", "Time goroutines waited, ready to run, before they ran (for a P, or for the P's thread to get a CPU); the sum adds each runtime bucket's lower bound.")
	e.sojournHistogram(name, "", "", buckets[:], sum, count)
}

// schedSample is the runtime/metrics sample scrapes read the histogram
// into: Read reuses the histogram a sample holds, so a scrape allocates
// nothing for it after the first.
var schedSample = struct {
	sync.Mutex
	s [1]rtmetrics.Sample
}{s: [1]rtmetrics.Sample{{Name: schedLatencyKey}}}

// foldLatencies folds h into buckets, len(bounds)+1 of them: bucket i
// counts the runtime buckets whose lower end is below bounds[i] and not
// below bounds[i-1]; the last takes the rest. sum adds each runtime
// bucket's lower end (0 for one that starts at minus infinity) times its
// count.
func foldLatencies(h *rtmetrics.Float64Histogram, bounds []time.Duration, buckets []uint64) (count uint64, sum float64) {
	j := 0
	for i, n := range h.Counts {
		lo := h.Buckets[i]
		for j < len(bounds) && lo >= bounds[j].Seconds() {
			j++
		}
		buckets[j] += n
		count += n
		if !math.IsInf(lo, -1) && lo > 0 {
			sum += lo * float64(n)
		}
	}
	return count, sum
}
