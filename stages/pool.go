package stages

// roundRobin is the ordering discipline of a worker pool: the stage before
// the pool sends packet i to worker i mod N, the stage after collects from
// worker i mod N. Each worker is FIFO and emits exactly one item per input
// (a dropped one too, marked), so the collector sees the packets in the
// order the dispatcher sent them. Its position survives a restart of the
// stage that owns it: it is part of the stage struct, not of Serve.
type roundRobin struct{ next int }

func (r *roundRobin) advance(n int) {
	r.next++
	if r.next == n {
		r.next = 0
	}
}

// send blocks until v is in ch or ctx is done; the pipeline's inner stages
// push back rather than drop.
func send[T any](done <-chan struct{}, ch chan<- T, v *T) bool {
	select {
	case ch <- *v:
		return true
	case <-done:
		return false
	}
}
