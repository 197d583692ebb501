package metrics

import (
	"strconv"

	"pipeguard/stages"
	"pipeguard/stages/fq"
)

// QueueStatser is an optional capability of a Source: the tunnel's
// managed queues (one per direction, where packets wait under load). When
// the Source has it, each queue's sojourn time is exported as a
// histogram, its drops and marks as counters.
type QueueStatser interface {
	QueueStats() []stages.QueueStats
}

var _ QueueStatser = (*stages.Tunnel)(nil)

// sojournBounds are the histogram's le labels, in seconds, made once.
var sojournBounds = func() [len(fq.SojournBounds)]string {
	var out [len(fq.SojournBounds)]string
	for i, d := range fq.SojournBounds {
		out[i] = strconv.FormatFloat(d.Seconds(), 'g', -1, 64)
	}
	return out
}()

func writeQueues(e *encoder, src Source) {
	qs, ok := src.(QueueStatser)
	if !ok {
		return
	}
	st := qs.QueueStats()
	label := func(q stages.QueueStats) []string { return []string{"queue", q.Name} }
	e.family("pipeguard_queue_sojourn_seconds", "histogram", "Time packets waited in the managed queue before they left it (the dropped ones too).")
	for _, q := range st {
		e.sojournHistogram("pipeguard_queue_sojourn_seconds", "queue", q.Name, q.Sojourn.Buckets[:], q.Sojourn.Sum.Seconds(), q.Sojourn.Count)
	}
	e.family("pipeguard_queue_drops_total", "counter", "Packets the managed queue's controller dropped for their time in the queue (before any work was spent on them).")
	for _, q := range st {
		e.sample("pipeguard_queue_drops_total", label(q), q.Drops)
	}
	e.family("pipeguard_queue_marks_total", "counter", "Packets the managed queue's controller marked ECN CE instead of dropping them.")
	for _, q := range st {
		e.sample("pipeguard_queue_marks_total", label(q), q.Marks)
	}
	e.family("pipeguard_queue_packets", "gauge", "Packets in the managed queue now.")
	for _, q := range st {
		e.sample("pipeguard_queue_packets", label(q), uint64(q.Len))
	}
	e.family("pipeguard_queue_managed", "gauge", "1 when queue management is on (the queue is flow-fair and kept near its target delay), 0 when it only fills.")
	for _, q := range st {
		v := uint64(0)
		if q.Managed {
			v = 1
		}
		e.sample("pipeguard_queue_managed", label(q), v)
	}
}

// sojournHistogram writes the samples of a histogram in the sojourn
// bounds (buckets[i] counts bucket i alone, the last one the rest),
// labelled with one name and value, or none if name is empty.
func (e *encoder) sojournHistogram(family, name, value string, buckets []uint64, sum float64, count uint64) {
	var buf [4]string // the label and le, on the stack
	labels := buf[:0]
	if name != "" {
		labels = append(labels, name, value)
	}
	var cum uint64
	for i, n := range buckets {
		cum += n
		le := "+Inf"
		if i < len(sojournBounds) {
			le = sojournBounds[i]
		}
		e.suffixed(family, "_bucket", append(labels, "le", le))
		e.uint(cum)
	}
	e.suffixed(family, "_sum", labels)
	e.float(sum)
	e.suffixed(family, "_count", labels)
	e.uint(count)
}
