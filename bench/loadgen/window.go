package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"pipeguard/tunio"
)

// The load generator's pacing: a window of packets in flight, and the
// flood that sends within it. Both are plain Go over tunio.UDPConn and two
// callbacks, so tests drive them against make-believe paths on a fake
// clock.

// Window bounds of the generator: how many packets it keeps in flight.
const (
	// windowStart and windowMax: milliseconds of the tunnel's work at up
	// to a million packets a second, so that its input never runs dry
	// while the generator sleeps (floodPause, and the runtime's timers
	// add up to a millisecond), and more than the tunnel holds in its own
	// queues: by Little's law a window caps the rate at what is in flight
	// over the time a packet takes through, and the pipeline's queues
	// (a few thousand slots a direction) make that time longer than the
	// sequential engine's. With 4096 the pipeline ran at one core while
	// a third of the machine sat idle (vmstat), and its pools showed no
	// gain in the spread decision's trials; with 16384 it took 113-134%
	// and delivered 1.10-1.51 times the sequential engine's rate, where
	// 4096 gave 0.95-1.21 (two --quick --repeat 3 runs each). Drops at
	// the tunnel's socket (8 MiB for PipeGuard, 7 MiB for wireguard-go,
	// which the kernel doubles; a GSO run of 64 datagrams takes about
	// 100 KiB) shrink the window, so it settles at what the path holds.
	windowStart = 8192
	windowMax   = 16384
	windowMin   = 64
	// windowGrow is added each time the generator finds the window full
	// and nothing was dropped since it last looked: the window seeks the
	// most the path holds without loss.
	windowGrow = 8
	// stallAfter: when nothing is delivered for this long while the window
	// is full, what is in flight was lost where no counter sees it (inside
	// a tunnel), and is written off.
	stallAfter = 50 * time.Millisecond
)

// window bounds the packets the generator has in flight: sent minus
// delivered, dropped where a counter sees it, or written off. A blind
// flood over a veth pair never meets backpressure (the receiving socket
// drops the surplus in the sender's own system call), so it would burn a
// whole core on packets nobody takes; with the window the generator sends
// only what the tunnel consumes, and the tunnel never waits for input. The
// size shrinks when a counter shows drops (by an eighth, or by the drops
// if more) and by half after a stall, and grows by windowGrow when full
// while packets are delivered. The zero value is not usable:
// use newWindow. Used by one goroutine.
type window struct {
	size       uint64
	sent       uint64 // packets handed to the kernel
	done       uint64 // delivered + dropped + writtenOff, at the last look
	dropped    uint64 // at the last look
	writtenOff uint64
	preStall   uint64 // the size before the last stall halved it
	dropEvents uint64 // the kernel's count, for the report
	delivered  uint64 // at the last look
	shrunk     bool   // drops were seen at the last look
	progressed bool   // packets were delivered since the one before
	moved      time.Time
	stalls     int
}

func newWindow(now time.Time) window { return window{size: windowStart, moved: now} }

// room is how many packets may be sent now.
func (w *window) room() uint64 {
	if w.sent >= w.done+w.size {
		return 0
	}
	return w.done + w.size - w.sent
}

// look takes in fresh counts: delivered and dropped since the flood began.
func (w *window) look(delivered, dropped uint64, now time.Time) {
	w.shrunk, w.progressed = false, delivered > w.delivered
	w.delivered = delivered
	if dropped > w.dropped {
		// By an eighth, or by as many as were lost if more: a window far
		// too large for the path comes down in one step.
		cut := max(w.size/8, dropped-w.dropped)
		w.size = max(windowMin, w.size-min(cut, w.size))
		w.dropped, w.shrunk = dropped, true
	}
	d := delivered + dropped + w.writtenOff
	if d > w.sent { // written off too soon: they turned up after all
		// The stall was the tunnel waiting for a CPU, not loss: the
		// window had not been too large.
		w.size = max(w.size, w.preStall)
		w.writtenOff -= min(w.writtenOff, d-w.sent)
		d = min(delivered+dropped+w.writtenOff, w.sent) // drops are estimates: never more done than sent
	}
	if d != w.done {
		w.done, w.moved = d, now
	}
}

// full is called after each look, which the window being full prompted:
// the window grows when packets were delivered and none dropped since the
// look before; when nothing moved for stallAfter, what is in flight is
// written off.
func (w *window) full(now time.Time) {
	if now.Sub(w.moved) >= stallAfter {
		w.writtenOff += w.sent - w.done
		w.done, w.moved = w.sent, now
		w.preStall, w.size = w.size, max(windowMin, w.size/2)
		w.stalls++
		return
	}
	if w.progressed && !w.shrunk {
		w.size = min(windowMax, w.size+windowGrow)
	}
}

// Pacing of the generator when the window is full: it sleeps this long
// before it looks again (the runtime's timers make it up to a millisecond
// more), which at a few hundred thousand packets a second frees room for
// several batches, and drains well under half the window. Each sleep is a
// thread switch or two, which in a VM cost about what sending a batch
// does: fewer, longer sleeps are most of what makes the generator cheap
// once its load is sealed ahead.
const floodPause = time.Millisecond

// dropLookEvery is how often the generator reads the kernel's drop
// counters (the flood's count, inbound /proc/net/snmp, outbound
// /proc/net/dev): formatting those files costs the kernel tens of
// microseconds a read, a tenth of the generator's CPU at every look, and
// drops beyond the window's size show up a few milliseconds late just as
// well.
const dropLookEvery = 10 * time.Millisecond

// cachedFor returns a reader that calls f at most once per d of now's
// time, and in between returns what f last returned. For one goroutine.
func cachedFor(d time.Duration, now func() time.Time, f func() (uint64, error)) func() (uint64, error) {
	var last time.Time
	var v uint64
	return func() (uint64, error) {
		t := now()
		if !last.IsZero() && t.Sub(last) < d {
			return v, nil
		}
		n, err := f()
		if err != nil {
			return 0, err
		}
		last, v = t, n
		return v, nil
	}
}

// floodMinSend is the least room worth a system call.
const floodMinSend = 32

// flood is one direction's generator: it fills batches and sends them as
// fast as the window allows. The counters may be read by other goroutines
// while run runs.
type flood struct {
	conn tunio.UDPConn
	segs uint64                      // datagrams per kernel packet: a GSO run's, or 1
	fill func(msgs []tunio.Datagram) // prepares len(msgs) datagrams
	// count reads the packets delivered and the kernel's drop events
	// since the flood began. A drop event may be a whole GSO run (the
	// kernel counts a super-packet it drops once), so run turns events
	// into packets at the datagrams per kernel packet it sent.
	count func() (delivered, drops uint64, err error)
	sleep func(time.Duration) // time.Sleep; tests pass a fake
	now   func() time.Time    // time.Now; tests set a fake
	msgs  []tunio.Datagram

	mu      sync.Mutex // guards stats and waiting, which run updates and snapshot reads
	stats   floodStats
	waiting time.Time // when the sleep in progress began; zero when none
}

// floodStats is what a flood did so far.
type floodStats struct {
	Sent       uint64
	Drops      uint64        // drop events the kernel counted
	Wait       time.Duration // spent waiting on a full window
	WrittenOff uint64
	Stalls     int
	Window     uint64
}

// gsoSegments is the most datagrams tunio puts in one GSO send (the
// kernel's UDP_MAX_SEGMENTS on the kernels we meet).
const gsoSegments = 64

func newFlood(conn tunio.UDPConn, batch int, fill func([]tunio.Datagram), count func() (uint64, uint64, error), sleep func(time.Duration)) *flood {
	f := &flood{conn: conn, segs: 1, fill: fill, count: count, sleep: sleep, now: time.Now, msgs: make([]tunio.Datagram, batch)}
	if o, ok := conn.(tunio.UDPOffloads); ok {
		if gso, _ := o.Offloads(); gso {
			f.segs = gsoSegments
		}
	}
	return f
}

// run sends until ctx ends or sending fails.
func (f *flood) run(ctx context.Context) error {
	done := ctx.Done()
	w := newWindow(f.now())
	var units, drops uint64 // kernel packets sent; drop events seen
	for {
		select {
		case <-done:
			return nil
		default:
		}
		room := w.room()
		if room < floodMinSend {
			delivered, d, err := f.count()
			if err != nil {
				return err
			}
			drops, w.dropEvents = d, d
			now := f.now()
			w.look(delivered, drops*w.sent/max(units, 1), now)
			w.full(now)
			if room = w.room(); room < floodMinSend {
				f.mu.Lock()
				f.waiting = now
				f.mu.Unlock()
				f.sleep(floodPause)
				f.note(&w, true)
				continue
			}
		}
		n := int(min(room, uint64(len(f.msgs))))
		f.fill(f.msgs[:n])
		if err := f.conn.WriteBatch(f.msgs[:n]); err != nil {
			if tunio.IsClosed(err) && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bench: loadgen: send: %w", err)
		}
		w.sent += uint64(n)
		units += (uint64(n) + f.segs - 1) / f.segs
		f.note(&w, false)
	}
}

// note publishes w's counts, and ends the wait in progress if slept.
func (f *flood) note(w *window, slept bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Sent, f.stats.WrittenOff, f.stats.Stalls, f.stats.Window = w.sent, w.writtenOff, w.stalls, w.size
	f.stats.Drops = w.dropEvents
	if slept {
		f.stats.Wait += f.now().Sub(f.waiting)
		f.waiting = time.Time{}
	}
}

// snapshot is the counts so far; a wait in progress counts up to now, so
// that two snapshots bound exactly the waiting between them.
func (f *flood) snapshot() floodStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	if !f.waiting.IsZero() {
		s.Wait += f.now().Sub(f.waiting)
	}
	return s
}
