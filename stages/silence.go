package stages

import (
	"sync/atomic"
	"time"

	"pipeguard/noise"
)

// PeerSilentAfter is how long a peer's handshake initiations may go
// unanswered before the tunnel logs it, at the default level: four
// initiations (one per RekeyTimeout, 5 s), long enough that a lost packet
// or a peer that restarts (it answers the next initiation) says nothing,
// and well before the 90 s after which the session gives up and drops
// what waits (noise.RekeyAttemptTime).
const PeerSilentAfter = 20 * time.Second

// peerSilentRelog is the least time between two "not answering" lines of
// one peer: a peer whose path flaps logs a pair of lines at most this
// often.
const peerSilentRelog = 5 * time.Minute

// Log lines of a peer that stops answering, and starts again.
const (
	msgPeerSilent  = "peer does not answer handshakes; its traffic waits, and is dropped once WireGuard gives up"
	msgPeerAnswers = "peer answers again"
)

// silence is one peer's part in those lines: the timer actor (which
// sends the initiations) writes the first, a handshake worker (which
// sees the answers) clears it. The zero value is a peer that was never
// reported.
type silence struct {
	// since is when the unanswered initiations began (Unix ns), once the
	// peer was reported silent; 0 while it is not.
	since atomic.Int64
	// logged is when the last "not answering" line was logged (Unix ns).
	logged atomic.Int64
}

// noteInitiation logs p as silent if its initiations have gone
// unanswered for PeerSilentAfter, once per silence, at most once per
// peerSilentRelog for the peer, and at most once a second for all peers
// (logLimited): a peer left out is reported at its next retry. The timer
// actor calls it after each initiation.
func (t *Tunnel) noteInitiation(p *peer, now time.Time) {
	since := p.session.UnansweredSince()
	if since.IsZero() || now.Sub(since) < PeerSilentAfter || p.silence.since.Load() != 0 {
		return
	}
	if last := p.silence.logged.Load(); last != 0 && now.Sub(time.Unix(0, last)) < peerSilentRelog {
		return
	}
	if !t.logLimited.ok(msgPeerSilent) {
		return
	}
	p.silence.since.Store(since.UnixNano())
	p.silence.logged.Store(now.UnixNano())
	t.log.Warn(msgPeerSilent, "peer", p.name(), "endpoint", p.Endpoint(),
		"for", now.Sub(since).Round(time.Second), "gives_up_after", noise.RekeyAttemptTime)
}

// noteAnswer logs p answering again if it was reported silent; the
// handshake workers call it for each handshake message p authenticated.
// It needs no rate limit of its own: each line answers one "not
// answering" line.
func (t *Tunnel) noteAnswer(p *peer, now time.Time) {
	if since := p.silence.since.Swap(0); since != 0 {
		t.log.Info(msgPeerAnswers, "peer", p.name(), "endpoint", p.Endpoint(),
			"silent_for", now.Sub(time.Unix(0, since)).Round(time.Second))
	}
}

// silentSince is when p's unanswered initiations began, if that was at
// least PeerSilentAfter before now; else the zero time.
func silentSince(p *peer, now time.Time) time.Time {
	since := p.session.UnansweredSince()
	if since.IsZero() || now.Sub(since) < PeerSilentAfter {
		return time.Time{}
	}
	return since
}
