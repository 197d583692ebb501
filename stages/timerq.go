package stages

import (
	"sync"
	"time"
)

// The timer actor's schedule. Every peer whose session has a deadline
// sits in a binary heap ordered by that deadline, so the actor finds
// what is due in O(due peers · log N) and sleeps until the earliest
// deadline, and an idle peer, or a peer with nothing armed, costs it
// nothing. A session that makes something due earlier than it last told
// the actor puts its peer on the wake list (wakePeer); the actor reads
// that peer's deadline again. Costs, with N peers in the heap: 32 bytes
// an entry, O(log N) to add, move or remove one, O(1) to see the
// earliest.

// timerEntry is one peer in the heap, with the deadline the actor read
// from its session.
type timerEntry struct {
	at time.Time
	p  *peer
}

// timerQueue is a heap of peers by deadline. Each peer in it knows its
// position (peer.timerIdx), so that a new deadline moves it in O(log N).
// The zero value is empty. Only the timer actor uses it.
type timerQueue struct {
	heap []timerEntry
}

// pos returns p's position in q, or -1. It checks that the position p
// remembers is really p's, so that a peer from another queue (one a
// restarted actor dropped) is never mistaken for a member.
func (q *timerQueue) pos(p *peer) int {
	i := int(p.timerIdx)
	if i < len(q.heap) && q.heap[i].p == p {
		return i
	}
	return -1
}

// set gives p the deadline at; the zero time takes it out of q.
func (q *timerQueue) set(p *peer, at time.Time) {
	i := q.pos(p)
	switch {
	case at.IsZero() && i < 0:
	case at.IsZero():
		last := len(q.heap) - 1
		q.swap(i, last)
		q.heap[last] = timerEntry{}
		q.heap = q.heap[:last]
		if i < last {
			q.fix(i)
		}
	case i < 0:
		q.heap = append(q.heap, timerEntry{at: at, p: p})
		p.timerIdx = int32(len(q.heap) - 1)
		q.up(len(q.heap) - 1)
	default:
		q.heap[i].at = at
		q.fix(i)
	}
}

// next returns the earliest entry, if any.
func (q *timerQueue) next() (timerEntry, bool) {
	if len(q.heap) == 0 {
		return timerEntry{}, false
	}
	return q.heap[0], true
}

// popDue appends to due every peer whose deadline is at or before now,
// taking them out of q, and returns it.
func (q *timerQueue) popDue(now time.Time, due []*peer) []*peer {
	for len(q.heap) > 0 && !q.heap[0].at.After(now) {
		p := q.heap[0].p
		q.set(p, time.Time{})
		due = append(due, p)
	}
	return due
}

// len is the number of peers in q.
func (q *timerQueue) len() int { return len(q.heap) }

func (q *timerQueue) less(i, j int) bool { return q.heap[i].at.Before(q.heap[j].at) }

func (q *timerQueue) swap(i, j int) {
	q.heap[i], q.heap[j] = q.heap[j], q.heap[i]
	q.heap[i].p.timerIdx = int32(i)
	q.heap[j].p.timerIdx = int32(j)
}

func (q *timerQueue) fix(i int) {
	if !q.down(i) {
		q.up(i)
	}
}

func (q *timerQueue) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			return
		}
		q.swap(i, parent)
		i = parent
	}
}

// down moves i toward the leaves and reports whether it moved.
func (q *timerQueue) down(i int) bool {
	start, n := i, len(q.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.swap(i, m)
		i = m
	}
	return i > start
}

// wakeList is the peers whose sessions asked the timer actor to read
// their deadlines again, each once until the actor takes the list. It
// belongs to the tunnel, not to the actor, so that a restarted actor
// finds what was asked meanwhile. Safe for concurrent use.
type wakeList struct {
	mu    sync.Mutex
	peers []*peer // guarded by mu
}

// add puts p on the list unless it is on it already.
func (w *wakeList) add(p *peer) {
	if p.timerWoken.Swap(true) {
		return
	}
	w.mu.Lock()
	w.peers = append(w.peers, p)
	w.mu.Unlock()
}

// take moves the list into buf (emptied first) and returns it; each
// peer on it may be added again from then on.
func (w *wakeList) take(buf []*peer) []*peer {
	w.mu.Lock()
	buf = append(buf[:0], w.peers...)
	clear(w.peers)
	w.peers = w.peers[:0]
	w.mu.Unlock()
	for _, p := range buf {
		p.timerWoken.Store(false)
	}
	return buf
}
