package loadgen

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"pipeguard/noise"
	"pipeguard/tunio"
	"pipeguard/wire"
)

// The inbound load, sealed ahead (loadgen mode). Sealing a 1280-byte
// packet costs the generator about what opening it costs the tunnel, so a
// generator that seals as it sends spends most of a core and leaves the
// tunnel under test one CPU of two. Instead, before each inbound cell the
// harness seals a ring of transport datagrams, each under the next counter
// of the session, on every CPU while no clock runs; during the cell the
// generator only hands them to sendmmsg. Every datagram must be unique (a
// counter is used once, and the tunnel's replay window rejects a repeat),
// so the ring costs its packets' bytes: it is sized for the cell at a rate
// above any tunnel's here, within a cap.

const (
	// loadRingRate is the inbound rate the ring is sized for: more than
	// any tunnel delivered here with a generator that only sends (0.63
	// Mpps, wireguard-go's GRO path; the PipeGuard engines 0.6), with
	// headroom for a faster machine or a faster tunnel.
	loadRingRate = 1_000_000 // datagrams per second
	// loadRingSlack is the time the flood runs beyond the warm-up and the
	// measured interval: starting, the last snapshot, stopping.
	loadRingSlack = 200 * time.Millisecond
	// loadRingCap bounds the ring's memory: 4 GiB, which holds a quick
	// cell (2.3 s) at loadRingRate; a longer cell, or a tunnel faster than
	// planned, finds the ring empty before its end, and the generator then
	// seals on the fly (the report says so). At most half of the memory
	// available when the run starts is used, so a small machine runs with
	// a smaller ring instead of failing.
	loadRingCap = 4 << 30
	// loadRingMin is the smallest ring worth making: a few windows.
	loadRingMin = 16 * windowMax
	// ringSlot is the memory one sealed datagram takes in the ring.
	ringSlot = uint64(wire.MaxMessageSize + 4) // a wire.Packet
)

// ringPackets is how many datagrams the ring holds for cells of warm-up
// plus dur: enough for loadRingRate, but at most loadRingCap bytes and
// half of avail (the memory available; 0 when unknown); capped says that a
// cap cut it.
func ringPackets(dur time.Duration, avail uint64) (n int, capped bool) {
	want := uint64((loadWarmup + dur + loadRingSlack).Seconds() * loadRingRate)
	most := uint64(loadRingCap) / ringSlot
	if avail > 0 {
		most = min(most, avail/2/ringSlot)
	}
	most = max(most, loadRingMin)
	if want > most {
		return int(most), true
	}
	return int(want), false
}

// sealedRing is the inbound load of one cell, sealed ahead under one
// session: pkts[i] carries counter first+i. The flood takes datagrams in
// order (fill); when the ring runs out before the cell ends, fill seals
// the rest on the fly under the same session, with the counters that
// follow, and counts them. The memory is made once per run and sealed
// anew for each cell (each is another session).
type sealedRing struct {
	pkts    []wire.Packet // the slots, in memory from mapRing
	free    func() error  // releases pkts' memory
	mapTook time.Duration // mapping and faulting pkts in

	// Of the current cell, set by presealInbound.
	peer     *loadPeer
	kp       *noise.Keypair
	first    uint64
	next     int           // the next slot to send; the flood's goroutine only
	sealTook time.Duration // wall time of the sealing
	answered uint64        // handshakes the tunnel had started before it

	live atomic.Uint64 // datagrams sealed on the fly after the ring ran out
}

// newSealedRing makes a ring of n slots.
func newSealedRing(n int) (*sealedRing, error) {
	begin := time.Now()
	pkts, free, err := mapRing(n)
	if err != nil {
		return nil, fmt.Errorf("bench: loadgen: %d MiB for the sealed ring: %w", uint64(n)*ringSlot>>20, err)
	}
	return &sealedRing{pkts: pkts, free: free, mapTook: time.Since(begin)}, nil
}

// bytes is the ring's memory.
func (r *sealedRing) bytes() uint64 { return uint64(len(r.pkts)) * ringSlot }

// close releases the ring's memory; the ring is unusable after it.
func (r *sealedRing) close() error {
	r.pkts = nil
	return r.free()
}

// presealInbound seals the whole ring with the inbound load under p's
// current session, on every CPU, and holds p's keepalives until
// releaseRing: the ring's counters are reserved now, and a keepalive
// sealed meanwhile would carry a later counter, move the tunnel's replay
// window past the ring and make it reject the whole ring as too old. (The
// inbound load keeps the tunnel hearing from us; it needs no keepalive.)
func (p *loadPeer) presealInbound(r *sealedRing) error {
	kp := p.kp.Load()
	if kp == nil {
		return errLoadHandshake
	}
	p.mu.Lock()
	p.hold = true
	p.mu.Unlock()
	begin := time.Now()
	// Nothing else seals under kp while the keepalives are held, so the
	// counters come out consecutive; check rather than trust it.
	first, err := kp.ReserveCounter()
	if err != nil {
		return err
	}
	for i := 1; i < len(r.pkts); i++ {
		if c, err := kp.ReserveCounter(); err != nil || c != first+uint64(i) {
			return fmt.Errorf("bench: loadgen: reserving the ring's counters: counter %d after %d (%v)", c, first+uint64(i)-1, err)
		}
	}
	// Rekey-After-Messages is 2^60: a ring never comes near it, but a
	// session that did would be replaced under it.
	if first+uint64(len(r.pkts)) >= noise.RekeyAfterMessages {
		return fmt.Errorf("bench: loadgen: the session is near Rekey-After-Messages")
	}
	workers := runtime.GOMAXPROCS(0)
	chunk := (len(r.pkts) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(r.pkts); lo += chunk {
		hi := min(lo+chunk, len(r.pkts))
		src := p.inbound // each worker its own: SealTo pads its source in place
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				kp.SealTo(&r.pkts[i], &src, first+uint64(i))
			}
		})
	}
	wg.Wait()
	r.peer, r.kp, r.first, r.next = p, kp, first, 0
	r.sealTook = time.Since(begin)
	r.answered = p.answered.Load()
	r.live.Store(0)
	return nil
}

// releaseRing ends the ring's cell: keepalives go on, with counters above
// every one the ring reserved.
func (p *loadPeer) releaseRing() {
	p.mu.Lock()
	p.hold = false
	p.mu.Unlock()
}

// fill is the flood's fill: the next len(msgs) datagrams of the ring, and
// when it has run out, datagrams sealed on the fly (counted in live).
func (r *sealedRing) fill(msgs []tunio.Datagram) {
	k := min(len(msgs), len(r.pkts)-r.next)
	for i := range k {
		pkt := &r.pkts[r.next+i]
		msgs[i] = tunio.Datagram{Buf: pkt.Buf[:pkt.MsgLen], N: int(pkt.MsgLen), Addr: r.peer.tunnel}
	}
	r.next += k
	if rest := msgs[k:]; len(rest) > 0 {
		r.peer.sealInboundWith(r.kp, rest)
		r.live.Add(uint64(len(rest)))
	}
}

// check says what went wrong with the ring's session during its cell, if
// anything: the harness handshook again (the ring's session would no
// longer be the one we send on), or the tunnel started a handshake (its
// new session becomes current, the ring's its previous one: still
// accepted, but a second one would drop it), or the session aged past
// Rekey-After-Time (the tunnel rejects it at Reject-After-Time).
func (r *sealedRing) check(now time.Time) string {
	switch {
	case r.peer.kp.Load() != r.kp:
		return "the harness's session changed during the inbound cell"
	case r.peer.answered.Load() != r.answered:
		return fmt.Sprintf("the tunnel started %d handshake(s) during the inbound cell; the pre-sealed session stayed its previous one",
			r.peer.answered.Load()-r.answered)
	case now.Sub(r.kp.Created) >= noise.RekeyAfterTime:
		return fmt.Sprintf("the pre-sealed session was %v old at the end of the inbound cell, past Rekey-After-Time", now.Sub(r.kp.Created).Round(time.Second))
	}
	return ""
}
