package noise

// The window is a ring of 64-bit blocks, one bit per counter, as in RFC 6479
// section 3. One block of the ring is always the partly filled block of the
// newest counter, so the usable window is one block less than the ring:
// (128-1)*64 = 8128 counters, the same as wireguard-go and Linux. A
// multi-queue sender and a parallel decrypt pool reorder packets by far less
// than that; the ring costs 1 KiB per keypair.
const (
	replayBlockLog   = 6 // a block holds 1<<6 = 64 counters
	replayBlockBits  = 1 << replayBlockLog
	replayRingBlocks = 128 // must be a power of two, for the mask below
	replayBlockMask  = replayRingBlocks - 1
	replayBitMask    = replayBlockBits - 1

	// ReplayWindowSize is how far behind the newest counter a counter may
	// be and still be accepted (once).
	ReplayWindowSize = (replayRingBlocks - 1) * replayBlockBits
)

// ReplayFilter is a keypair's receive window: it accepts each counter once,
// and rejects counters more than ReplayWindowSize behind the newest one seen.
//
// The zero value is an empty window, ready to use. It is not safe for
// concurrent use: it is owned by the single ordered stage after the decrypt
// pool, which checks it only after the message authenticated (an
// unauthenticated counter must never move the window).
type ReplayFilter struct {
	last uint64 // newest counter accepted
	ring [replayRingBlocks]uint64
}

// Reset empties the window.
func (f *ReplayFilter) Reset() {
	// Clearing block 0 is enough: with last at 0 only counters of block 0
	// are inside the window, and every block the window advances into is
	// cleared by ValidateCounter before it is used.
	f.last = 0
	f.ring[0] = 0
}

// ValidateCounter reports whether counter is fresh, and records it if so.
// It rejects a counter seen before, one more than ReplayWindowSize behind
// the newest, and any counter >= limit (pass RejectAfterMessages). It does
// not allocate.
func (f *ReplayFilter) ValidateCounter(counter, limit uint64) bool {
	if counter >= limit {
		return false
	}
	block := counter >> replayBlockLog
	if counter > f.last {
		// Slide forward: clear the blocks between the newest counter's
		// block and this one's. A jump of a whole ring or more clears it
		// all; capping the loop keeps a far jump O(ring), not O(jump).
		cur := f.last >> replayBlockLog
		diff := min(block-cur, replayRingBlocks)
		for i := cur + 1; i <= cur+diff; i++ {
			f.ring[i&replayBlockMask] = 0
		}
		f.last = counter
	} else if f.last-counter > ReplayWindowSize {
		return false
	}
	i := block & replayBlockMask
	bit := uint64(1) << (counter & replayBitMask)
	if f.ring[i]&bit != 0 {
		return false
	}
	f.ring[i] |= bit
	return true
}
