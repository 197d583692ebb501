package stages

import "sync/atomic"

// HandshakeStats counts what the handshake workers did with the messages they
// took from their queue since the tunnel started: the figures that show the
// cookie mechanism at work under a flood. Messages it dropped are also in
// Stats, under the "handshake" stage (handshake_invalid), and the ones
// udprecv dropped for a full queue under "udprecv" (queue_full).
type HandshakeStats struct {
	Initiations   uint64 // initiations taken from the queue
	Worked        uint64 // initiations that cost Curve25519 work (passed the cookie gate)
	Responses     uint64 // initiations answered with a handshake response
	CookieReplies uint64 // handshake messages answered with a cookie reply instead (under load, no valid MAC2)
	RateLimited   uint64 // handshake messages dropped by the per-source limit under load
	Throttled     uint64 // handshake messages dropped because the work budget was spent
	// InitiationsDeferred counts initiations the timer actor did not send
	// because its budget was spent (see initiationBudget): the session
	// retries them as if they were lost.
	InitiationsDeferred uint64
}

// handshakeCounters are HandshakeStats' live counters; the handshake
// workers write them, anyone reads them.
type handshakeCounters struct {
	initiations, worked, responses, cookieReplies, rateLimited, throttled atomic.Uint64
	initiationsDeferred                                                   atomic.Uint64 // written by the timer actor
}

// HandshakeStats returns a snapshot of the handshake workers' counters.
func (t *Tunnel) HandshakeStats() HandshakeStats {
	c := &t.hsCounters
	return HandshakeStats{
		Initiations:   c.initiations.Load(),
		Worked:        c.worked.Load(),
		Responses:     c.responses.Load(),
		CookieReplies: c.cookieReplies.Load(),
		RateLimited:   c.rateLimited.Load(),
		Throttled:     c.throttled.Load(),

		InitiationsDeferred: c.initiationsDeferred.Load(),
	}
}
