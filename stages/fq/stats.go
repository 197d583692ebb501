package fq

import (
	"sync/atomic"
	"time"
)

// SojournBounds are the upper bounds of the sojourn histogram's buckets
// (a last bucket takes the rest): from well under a LAN's round trip to
// well over an internet one's, so that both a tunnel's target and a
// standing queue of tens of milliseconds show.
var SojournBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
}

// numBuckets counts the bounded buckets and the last one.
const numBuckets = len(SojournBounds) + 1

// Stats is a snapshot of a queue's counters. The counts only grow.
type Stats struct {
	Len, Cap int
	// Taken counts packets that left the queue to be sent on, the
	// marked ones among them.
	Taken uint64
	// Drops counts packets the controller dropped for their time in the
	// queue; Marks those it marked CE instead.
	Drops, Marks uint64
	// Sojourn is the time in queue of every packet that left it, the
	// dropped ones too: Buckets[i] counts those that waited at most
	// SojournBounds[i] (not cumulative; the last bucket has no bound).
	Sojourn struct {
		Buckets [numBuckets]uint64
		Count   uint64
		Sum     time.Duration
	}
}

// counts is what the consumer counts between two publishes: plain
// fields, under the queue's lock.
type counts struct {
	taken, drops, marks uint64
	buckets             [numBuckets]uint64
	n                   uint64
	sum                 time.Duration
}

func (c *counts) sojourn(d time.Duration) {
	i := 0
	for i < len(SojournBounds) && d > SojournBounds[i] {
		i++
	}
	c.buckets[i]++
	c.n++
	c.sum += max(d, 0)
}

// published holds the counts where Stats reads them without the lock.
type published struct {
	taken, drops, marks atomic.Uint64
	buckets             [numBuckets]atomic.Uint64
	n                   atomic.Uint64
	sum                 atomic.Int64
}

// publish moves the consumer's counts to where Stats reads them: once per
// Take, so a busy queue pays a few atomic adds per run, not per packet.
func (q *Queue[T]) publish() {
	c, p := &q.acct, &q.stats
	if c.n == 0 {
		return
	}
	p.taken.Add(c.taken)
	if c.drops > 0 {
		p.drops.Add(c.drops)
	}
	if c.marks > 0 {
		p.marks.Add(c.marks)
	}
	for i, v := range c.buckets {
		if v > 0 {
			p.buckets[i].Add(v)
		}
	}
	p.n.Add(c.n)
	p.sum.Add(int64(c.sum))
	*c = counts{}
}

// Stats returns a snapshot of the queue's counters. It takes no lock;
// safe from any goroutine.
func (q *Queue[T]) Stats() Stats {
	p := &q.stats
	s := Stats{Len: q.Len(), Cap: q.Cap(), Taken: p.taken.Load(), Drops: p.drops.Load(), Marks: p.marks.Load()}
	for i := range p.buckets {
		s.Sojourn.Buckets[i] = p.buckets[i].Load()
	}
	s.Sojourn.Count = p.n.Load()
	s.Sojourn.Sum = time.Duration(p.sum.Load())
	return s
}

// Consumed counts the packets that have left the queue (taken or
// dropped), as far as published: for a health check, how far the
// consumer has got. Safe from any goroutine.
func (q *Queue[T]) Consumed() uint64 { return q.stats.n.Load() }
