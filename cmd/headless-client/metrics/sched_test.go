package metrics

import (
	"math"
	rtmetrics "runtime/metrics"
	"slices"
	"testing"
	"time"
)

func TestFoldLatencies(t *testing.T) {
	bounds := []time.Duration{time.Millisecond, 10 * time.Millisecond}
	h := &rtmetrics.Float64Histogram{
		// [-Inf,0) [0,0.5ms) [0.5ms,1ms) [1ms,1.2ms) [1.2ms,20ms) [20ms,+Inf)
		Buckets: []float64{math.Inf(-1), 0, 0.0005, 0.001, 0.0012, 0.02, math.Inf(1)},
		Counts:  []uint64{0, 4, 2, 3, 5, 1},
	}
	buckets := make([]uint64, len(bounds)+1)
	count, sum := foldLatencies(h, bounds, buckets)
	// Below 1 ms: the buckets from 0 and 0.5 ms; below 10 ms: those
	// from 1 and 1.2 ms; the rest: the one from 20 ms.
	if want := []uint64{6, 8, 1}; !slices.Equal(buckets, want) {
		t.Errorf("buckets %v, want %v", buckets, want)
	}
	if count != 15 {
		t.Errorf("count %d, want 15", count)
	}
	if want := 2*0.0005 + 3*0.001 + 5*0.0012 + 1*0.02; math.Abs(sum-want) > 1e-12 {
		t.Errorf("sum %v, want %v (the lower bounds)", sum, want)
	}
}

// TestSchedLatencyExposed: the runtime's scheduling latency is a
// histogram whose buckets grow to its count, which grows as goroutines
// are scheduled (the runtime samples about one scheduling in eight).
func TestSchedLatencyExposed(t *testing.T) {
	scrape := func() map[string]float64 { return parseStrict(t, exposition(t, newFake())) }
	before := scrape()
	done := make(chan struct{})
	for range 1000 {
		go func() { done <- struct{}{} }()
		<-done
	}
	after := scrape()
	const name = "go_sched_latencies_seconds"
	if after[name+"_count"] < before[name+"_count"]+10 {
		t.Errorf("count %v after 1000 goroutines ran, %v before", after[name+"_count"], before[name+"_count"])
	}
	if after[name+`_bucket{le="+Inf"}`] != after[name+"_count"] {
		t.Errorf("+Inf bucket %v, count %v", after[name+`_bucket{le="+Inf"}`], after[name+"_count"])
	}
	prev := 0.0
	for _, le := range sojournBounds {
		v, ok := after[name+`_bucket{le="`+le+`"}`]
		if !ok || v < prev {
			t.Errorf("bucket le=%s: %v (present %v), below the one before (%v)", le, v, ok, prev)
		}
		prev = v
	}
	if after[name+"_sum"] < 0 {
		t.Errorf("sum %v", after[name+"_sum"])
	}
}
