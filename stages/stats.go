package stages

import "sync/atomic"

// DropReason says why a packet was dropped. Every drop is counted under
// exactly one reason.
type DropReason uint8

// Drop reasons, inbound and outbound. dropNone marks a live packet.
const (
	dropNone            DropReason = iota
	DropMalformed                  // not a WireGuard message, bad size or reserved bytes
	DropUnknownIndex               // receiver index matches no session
	DropAuth                       // AEAD authentication failed
	DropReplay                     // counter replayed or too old for the window
	DropKeyExpired                 // keypair too old or exhausted
	DropNotAllowed                 // inner source not in the peer's AllowedIPs
	DropNotIP                      // inner packet is not IPv4/IPv6 or is truncated
	DropNoRoute                    // outbound destination matches no peer
	DropNoEndpoint                 // peer has no known endpoint yet
	DropQueueFull                  // a drop-when-full queue was full
	DropStagedOverflow             // per-peer queue awaiting a handshake was full
	DropHandshakeGiveUp            // queued packets dropped when a handshake failed
	DropHandshake                  // handshake message invalid, forged or rate-limited
	DropSendError                  // the UDP socket refused the datagram
	DropWriteError                 // the TUN device refused the packet
	DropPanic                      // packet in hand when a stage panicked
	DropReadError                  // the TUN device lost an offloaded super-packet (more segments than buffers)
	DropNoPrivateKey               // handshake message while the tunnel has no private key
	DropTooBig                     // inner packet above 1280 bytes: from the TUN (MTU raised) or a peer (its MTU too large)
	DropQueueDelay                 // the managed queue's controller dropped it for its time in queue
	DropECN                        // outer header marked CE on a packet that cannot carry ECN (RFC 6040 says drop)
	DropLowOrderKey                // handshake refused: the peer's public key is a low-order point (initiation not sent, or received)
	numDropReasons
)

// dropSkip marks a pipeline slot that carries no packet for the stages
// after it: a handshake message udprecv handed to the handshake workers, or
// a datagram it already dropped and counted. Such slots keep a worker
// pool's round-robin in step; they are never counted again.
const dropSkip DropReason = numDropReasons + 1

var dropNames = [numDropReasons]string{
	dropNone:            "none",
	DropMalformed:       "malformed",
	DropUnknownIndex:    "unknown_index",
	DropAuth:            "auth_failed",
	DropReplay:          "replay",
	DropKeyExpired:      "key_expired",
	DropNotAllowed:      "source_not_allowed",
	DropNotIP:           "not_ip",
	DropNoRoute:         "no_route",
	DropNoEndpoint:      "no_endpoint",
	DropQueueFull:       "queue_full",
	DropStagedOverflow:  "staged_overflow",
	DropHandshakeGiveUp: "handshake_give_up",
	DropHandshake:       "handshake_invalid",
	DropSendError:       "send_error",
	DropWriteError:      "write_error",
	DropPanic:           "panic",
	DropReadError:       "read_error",
	DropNoPrivateKey:    "no_private_key",
	DropTooBig:          "too_big",
	DropQueueDelay:      "queue_delay",
	DropECN:             "ecn_ce_not_ect",
	DropLowOrderKey:     "low_order_key",
}

// String is the reason's name as it appears in logs and metrics.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, for callers that print or export them.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDropReasons-1)
	for r := DropMalformed; r < numDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// stageCounters belongs to one stage instance (one worker of a pool has its
// own), so that its single writer never shares a cache line with another
// stage's; readers sum over instances. The published fields are atomics so
// that metrics read them without locks while the stage runs. The zero
// value is ready.
//
// Packets and bytes handed on are counted in plain fields first and
// published in groups (publish): a locked add per packet per stage was a
// noticeable share of the pipeline's per-packet cost. A stage publishes
// before it waits, so a reader is never behind by more than one group of
// a busy stage, and an idle tunnel's counters are exact. Drops are rare and
// published at once.
type stageCounters struct {
	packets atomic.Uint64
	bytes   atomic.Uint64
	drops   [numDropReasons]atomic.Uint64
	// keepalives counts empty transport messages: received (route-in,
	// inbound), sent (the timer actor). They are neither data nor drops.
	keepalives atomic.Uint64

	// Owned by the stage's goroutine (and by its successor after a
	// restart, which the supervisor orders after it).
	unpublishedPackets, unpublishedBytes uint64

	_ [64]byte // keep the next instance's counters off this line
}

// publishEvery bounds how many packets a busy stage counts before it
// publishes them.
const publishEvery = 64

func (c *stageCounters) pass(n int) {
	c.unpublishedPackets++
	c.unpublishedBytes += uint64(n)
	if c.unpublishedPackets >= publishEvery {
		c.publish()
	}
}

// publish makes the packets counted by pass visible to readers.
func (c *stageCounters) publish() {
	if c.unpublishedPackets == 0 {
		return
	}
	c.packets.Add(c.unpublishedPackets)
	c.bytes.Add(c.unpublishedBytes)
	c.unpublishedPackets, c.unpublishedBytes = 0, 0
}

func (c *stageCounters) drop(r DropReason) { c.drops[r].Add(1) }

// handled is how many values the instance has published as passed,
// dropped or keepalives: for the health check, a count of its progress.
func (c *stageCounters) handled() uint64 {
	n := c.packets.Load() + c.keepalives.Load()
	for i := range c.drops {
		n += c.drops[i].Load()
	}
	return n
}

// lostToPanic counts n packets a stage lost when it panicked.
func (c *stageCounters) lostToPanic(n uint64) {
	if n > 0 {
		c.drops[DropPanic].Add(n)
	}
}

// StageStats is a snapshot of one stage's counters, summed over its
// instances.
type StageStats struct {
	Name       string
	Instances  int
	Packets    uint64 // packets the stage handed on
	Bytes      uint64 // their bytes (inner bytes on the inner side, datagram bytes on the outer side)
	Drops      map[DropReason]uint64
	QueueDepth int    // packets waiting in the stage's input channels now
	QueueCap   int    // capacity of those channels
	Restarts   uint64 // times the supervisor restarted an instance
	Keepalives uint64 // keepalives received (route-in, inbound) or sent (timers)
}

// TotalDrops sums the stage's drops over all reasons.
func (s StageStats) TotalDrops() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}
