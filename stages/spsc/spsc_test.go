package spsc

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type value struct {
	seq uint64
	buf [1300]byte
}

// transfer pushes n values through q from one goroutine to another and
// checks that they arrive complete, once each, in order. The producer
// flushes only before it stops; everything else is the queue's own
// publishing, so a value left unpublished would hang the test.
func transfer(t *testing.T, q *Queue[value], n uint64, consumerBatch int) {
	t.Helper()
	done := make(chan struct{})
	defer close(done)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			p, ok := q.Reserve(done)
			if !ok {
				return
			}
			p.seq = i
			p.buf[0], p.buf[len(p.buf)-1] = byte(i), byte(i>>8)
			q.Commit()
		}
		q.Flush()
	}()
	var want uint64
	for want < n {
		p, ok := q.Next(done)
		if !ok {
			t.Fatal("Next failed before done")
		}
		got := []*value{p}
		for len(got) < consumerBatch {
			if p := q.TryNext(); p != nil {
				got = append(got, p)
			} else {
				break
			}
		}
		for _, p := range got {
			if p.seq != want || p.buf[0] != byte(want) || p.buf[len(p.buf)-1] != byte(want>>8) {
				t.Fatalf("got value %d (%d, %d), want %d", p.seq, p.buf[0], p.buf[len(p.buf)-1], want)
			}
			want++
		}
		if l := q.Len(); l > q.Cap() {
			t.Fatalf("Len %d exceeds Cap %d", l, q.Cap())
		}
		q.Done()
	}
	wg.Wait()
}

func TestFIFOAcrossGoroutines(t *testing.T) {
	for _, tc := range []struct {
		capacity, batch int
	}{
		{1, 1}, {2, 1}, {3, 4}, {7, 3}, {64, 1}, {1000, 128}, {1024, 1},
	} {
		q := New[value](tc.capacity)
		transfer(t, q, 20000, tc.batch)
	}
}

func TestCapacityBounds(t *testing.T) {
	q := New[value](5)
	done := make(chan struct{})
	defer close(done)
	for i := range 5 {
		if _, ok := q.Reserve(done); !ok {
			t.Fatalf("reserve %d failed", i)
		}
	}
	if p := q.TryReserve(); p != nil {
		t.Fatal("reserved a sixth slot in a queue of 5")
	}
	q.Commit()
	q.Flush()
	if q.Len() != 5 {
		t.Fatalf("Len %d, want 5", q.Len())
	}
	// Taking a value does not free its slot; Done and Release do.
	q.Next(done)
	if p := q.TryReserve(); p != nil {
		t.Fatal("slot reused while the consumer holds it")
	}
	q.Done()
	q.Release()
	if p := q.TryReserve(); p == nil {
		t.Fatal("no slot after the consumer released one")
	}
}

func TestCancelAndCommitFirst(t *testing.T) {
	q := New[value](8)
	done := make(chan struct{})
	defer close(done)
	for i := range 4 {
		p, _ := q.Reserve(done)
		p.seq = uint64(i)
	}
	q.CommitFirst(2)
	for i := range 3 {
		p, _ := q.Reserve(done)
		p.seq = uint64(10 + i)
	}
	q.Cancel()
	p, _ := q.Reserve(done)
	p.seq = 99
	q.Commit()
	q.Flush()
	var got []uint64
	for p := q.TryNext(); p != nil; p = q.TryNext() {
		got = append(got, p.seq)
	}
	if want := []uint64{0, 1, 99}; len(got) != len(want) || got[0] != 0 || got[1] != 1 || got[2] != 99 {
		t.Fatalf("got %v, want %v", got, want)
	}
	if q.InHand() != 3 {
		t.Fatalf("InHand %d, want 3", q.InHand())
	}
	q.Done()
	if q.InHand() != 0 {
		t.Fatalf("InHand %d after Done", q.InHand())
	}
}

func TestDoneUnblocksBothEnds(t *testing.T) {
	q := New[value](1)
	done := make(chan struct{})
	p, _ := q.Reserve(done)
	p.seq = 1
	q.Commit()
	results := make(chan bool, 2)
	go func() { _, ok := q.Reserve(done); results <- ok }() // full: waits
	empty := New[value](1)
	go func() { _, ok := empty.Next(done); results <- ok }() // empty: waits
	time.Sleep(10 * time.Millisecond)
	close(done)
	for range 2 {
		select {
		case ok := <-results:
			if ok {
				t.Fatal("a wait succeeded after done closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("done did not unblock a waiting end")
		}
	}
}

func TestWaitingConsumerWakes(t *testing.T) {
	// The consumer parks first; one committed value must wake it without
	// an explicit Flush, because the producer publishes before it waits
	// and a lone value must not sit unseen: here the producer flushes as
	// a stage does before it waits on its own input.
	q := New[value](1000)
	done := make(chan struct{})
	defer close(done)
	got := make(chan uint64)
	go func() {
		p, ok := q.Next(done)
		if ok {
			got <- p.seq
		}
	}()
	time.Sleep(10 * time.Millisecond)
	p, _ := q.Reserve(done)
	p.seq = 42
	q.Commit()
	q.Flush()
	select {
	case v := <-got:
		if v != 42 {
			t.Fatalf("got %d", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked consumer not woken")
	}
}

func TestNoAllocs(t *testing.T) {
	q := New[value](64)
	done := make(chan struct{})
	defer close(done)
	allocs := testing.AllocsPerRun(1000, func() {
		p, _ := q.Reserve(done)
		p.seq++
		q.Commit()
		q.Flush()
		q.Next(done)
		q.Done()
		q.Release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip", allocs)
	}
}

// BenchmarkTransfer and BenchmarkChannel move 1300-byte values between two
// goroutines: one copy per value here (the producer fills the slot), two
// through a channel (into its buffer and out).
func BenchmarkTransfer(b *testing.B) {
	var src value
	q := New[value](1000)
	done := make(chan struct{})
	defer close(done)
	b.SetBytes(int64(len(value{}.buf)))
	b.ReportAllocs()
	go func() {
		for i := range b.N {
			p, ok := q.Reserve(done)
			if !ok {
				return
			}
			src.seq = uint64(i)
			*p = src
			q.Commit()
		}
		q.Flush()
	}()
	var sum uint64
	for i := range b.N {
		p, _ := q.Next(done)
		sum += p.seq + uint64(p.buf[i%len(p.buf)])
		q.Done()
	}
	_ = sum
}

func BenchmarkChannel(b *testing.B) {
	ch := make(chan value, 1000)
	b.SetBytes(int64(len(value{}.buf)))
	b.ReportAllocs()
	go func() {
		var v value
		for i := range b.N {
			v.seq = uint64(i)
			ch <- v
		}
	}()
	var sum uint64
	var v value
	for i := range b.N {
		v = <-ch
		sum += v.seq + uint64(v.buf[i%len(v.buf)])
	}
	_ = sum
}

// TestReserveN: the batch reservation takes what fits, hands the slots
// out in order with Reserved, mixes with single reservations, and its
// values arrive in order; ReserveN waits for room and gives up on done.
func TestReserveN(t *testing.T) {
	q := New[value](10)
	done := make(chan struct{})
	defer close(done)
	if got := q.TryReserveN(4); got != 4 || q.Reservations() != 4 {
		t.Fatalf("TryReserveN(4) = %d, %d reserved", got, q.Reservations())
	}
	p, _ := q.Reserve(done) // the fifth, after the batch
	if p != q.Reserved(4) {
		t.Fatal("Reserve after TryReserveN does not hand out the next slot")
	}
	if got := q.TryReserveN(100); got != 5 {
		t.Fatalf("TryReserveN(100) with 5 free = %d", got)
	}
	if got := q.TryReserveN(1); got != 0 {
		t.Fatalf("TryReserveN on a full queue = %d", got)
	}
	for i := range q.Reservations() {
		q.Reserved(i).seq = uint64(i)
	}
	q.CommitFirst(7) // the last three go back
	q.Flush()
	if q.Len() != 7 || q.Reservations() != 0 {
		t.Fatalf("Len %d, %d reserved after CommitFirst(7)", q.Len(), q.Reservations())
	}
	if got := q.TryReserveN(5); got != 3 {
		t.Fatalf("TryReserveN(5) with 3 free = %d", got)
	}
	for i := range 3 {
		q.Reserved(i).seq = uint64(7 + i)
	}
	q.Commit()
	q.Flush()
	for want := range uint64(10) {
		p := q.TryNext()
		if p == nil || p.seq != want {
			t.Fatalf("value %d: got %v", want, p)
		}
	}
	q.Done()
	q.Release()

	// ReserveN waits until the consumer makes room.
	if !q.ReserveN(done, 10) {
		t.Fatal("ReserveN(10) on an empty queue failed")
	}
	q.Commit()
	q.Flush()
	reserved := make(chan bool)
	go func() { reserved <- q.ReserveN(done, 4) }()
	select {
	case <-reserved:
		t.Fatal("ReserveN did not wait on a full queue")
	case <-time.After(10 * time.Millisecond):
	}
	for range 10 {
		q.Next(done)
	}
	q.Done()
	q.Release()
	select {
	case ok := <-reserved:
		if !ok {
			t.Fatal("ReserveN failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReserveN not woken by the room the consumer made")
	}
	q.Cancel()

	// ... and gives up when done closes.
	full := New[value](2)
	full.ReserveN(done, 2)
	stop := make(chan struct{})
	go func() { reserved <- full.ReserveN(stop, 1) }()
	close(stop)
	if ok := <-reserved; ok {
		t.Fatal("ReserveN succeeded on a full queue after done closed")
	}
}

// TestReserveNAcrossGoroutines: batches reserved with TryReserveN (and the
// rest of a batch with ReserveN) cross to a consumer complete and in
// order, whatever the capacity.
func TestReserveNAcrossGoroutines(t *testing.T) {
	for _, tc := range []struct{ capacity, batch int }{{1, 1}, {3, 2}, {16, 16}, {64, 50}, {1000, 128}} {
		q := New[value](tc.capacity)
		const n = 20000
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); i < n; {
				k := min(tc.batch, int(n-i))
				got := q.TryReserveN(k)
				if got < k && !q.ReserveN(done, k-got) {
					return
				}
				for j := range k {
					q.Reserved(j).seq = i + uint64(j)
				}
				q.Commit()
				i += uint64(k)
			}
			q.Flush()
		}()
		for want := uint64(0); want < n; want++ {
			p, ok := q.Next(done)
			if !ok || p.seq != want {
				t.Fatalf("capacity %d batch %d: got %v, want %d", tc.capacity, tc.batch, p, want)
			}
			q.Done()
		}
		close(done)
		wg.Wait()
	}
}

// BenchmarkReserve128 reserves a batch of 128 slots, as an edge stage does
// before each read, commits them and takes them back, on one goroutine:
// one TryReserve per slot against one TryReserveN per batch (the per-op
// time is per batch).
func BenchmarkReserve128(b *testing.B) {
	for _, mode := range []string{"per-slot", "batch"} {
		b.Run(mode, func(b *testing.B) {
			q := New[value](1000)
			var slots [128]*value
			for range b.N {
				if mode == "per-slot" {
					for k := range slots {
						slots[k] = q.TryReserve()
					}
				} else {
					q.TryReserveN(len(slots))
					for k := range slots {
						slots[k] = q.Reserved(k)
					}
				}
				slots[0].seq++
				q.Commit()
				q.Flush()
				for q.TryNext() != nil {
				}
				q.Done()
				q.Release()
			}
		})
	}
}

// BenchmarkTransferCapacity moves 1300-byte values between two goroutines
// whose consumer reads every byte, as a decrypt worker does, through
// queues of several capacities: a ring's slots are reused only once the
// producer has gone round it, so a larger ring touches more memory per
// value that crosses the cores.
func BenchmarkTransferCapacity(b *testing.B) {
	for _, capacity := range []int{64, 256, 1000, 4096} {
		b.Run(fmt.Sprintf("cap=%d", capacity), func(b *testing.B) {
			var src value
			for i := range src.buf {
				src.buf[i] = byte(i)
			}
			q := New[value](capacity)
			done := make(chan struct{})
			defer close(done)
			b.SetBytes(int64(len(value{}.buf)))
			go func() {
				for i := range b.N {
					p, ok := q.Reserve(done)
					if !ok {
						return
					}
					src.seq = uint64(i)
					*p = src
					q.Commit()
				}
				q.Flush()
			}()
			var sum uint64
			for range b.N {
				p, _ := q.Next(done)
				for _, c := range p.buf {
					sum += uint64(c)
				}
				q.Done()
			}
			if sum == 0 {
				b.Fatal("nothing read")
			}
		})
	}
}
