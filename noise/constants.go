package noise

import "time"

// Protocol constants from section 6.1 of the WireGuard whitepaper. They are
// the same in every implementation; changing one breaks interoperability or
// the protocol's security argument.
const (
	RekeyAfterMessages  = (1 << 60)
	RejectAfterMessages = (1 << 64) - (1 << 13) - 1
	RekeyAfterTime      = 120 * time.Second
	RejectAfterTime     = 180 * time.Second
	RekeyAttemptTime    = 90 * time.Second
	RekeyTimeout        = 5 * time.Second
	// RekeyTimeoutJitterMax is added, uniformly at random, to each handshake
	// retry so that peers that lost a handshake together do not retry in
	// lockstep.
	RekeyTimeoutJitterMax = 334 * time.Millisecond
	KeepaliveTimeout      = 10 * time.Second
	CookieRefreshTime     = 120 * time.Second
	// HandshakeInitiationRate bounds how often we answer one peer's
	// initiations; the whitepaper's rate limit of 50 per second.
	HandshakeInitiationRate = time.Second / 50
	// MaxHandshakeAttempts is how many initiations are sent for one
	// handshake before giving up: Rekey-Attempt-Time / Rekey-Timeout.
	MaxHandshakeAttempts = int(RekeyAttemptTime / RekeyTimeout)
	// ZeroKeysAfter is when, without a new handshake, all key material of a
	// peer is erased.
	ZeroKeysAfter = 3 * RejectAfterTime
)
