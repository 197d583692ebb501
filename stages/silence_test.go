package stages

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/wire"
)

// TestPeerSilenceLogged: a peer that does not answer the tunnel's
// initiations is logged once, at warn, when they have gone unanswered
// for PeerSilentAfter (not before), and its status says since when; when
// it answers, one info line says so and the status clears. A second
// silence within peerSilentRelog is not logged again; one after it is.
func TestPeerSilenceLogged(t *testing.T) {
	var logs lockedBuffer
	clk := fakeClock()
	e, p := withRawPeer(t, tunnelSpec{clock: clk, log: slog.New(slog.NewTextHandler(&logs, nil))})
	tp := firstPeer(e.tun)
	silent := func() int { return strings.Count(logs.String(), msgPeerSilent) }
	answers := func() int { return strings.Count(logs.String(), msgPeerAnswers) }
	// retry lets the clock run to the next initiation and takes it.
	retry := func() {
		t.Helper()
		advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
		p.recvType(wire.TypeInitiation, 5*time.Second)
	}
	// goSilent sends a packet the peer never answers and lets the
	// retries run for just under PeerSilentAfter, when the log must still
	// have before lines, then past it: after two more retries, and their
	// notes, it must have after.
	goSilent := func(before, after int) {
		t.Helper()
		e.inject(t, ipv4(hostA.v4, hostB.v4, 100, 1))
		p.recvType(wire.TypeInitiation, 5*time.Second)
		start := clk.Now()
		for clk.Now().Sub(start)+noise.RekeyTimeout+noise.RekeyTimeoutJitterMax < PeerSilentAfter {
			retry()
		}
		if n := silent(); n != before {
			t.Fatalf("after %v: %d lines, want %d:\n%s", clk.Now().Sub(start), n, before, logs.String())
		}
		retry()
		retry()
		// The timer actor notes an initiation after it is sent, so the
		// second retry's note may still be on its way: wait for it.
		waitFor(t, 5*time.Second, func() bool { return silent() >= after }, func() string {
			return fmt.Sprintf("after %v: %d lines, want %d:\n%s", clk.Now().Sub(start), silent(), after, logs.String())
		})
		if n := silent(); n != after {
			t.Fatalf("after %v: %d lines, want %d:\n%s", clk.Now().Sub(start), n, after, logs.String())
		}
	}

	goSilent(0, 1)
	if !strings.Contains(logs.String(), "level=WARN msg=\""+msgPeerSilent) || !strings.Contains(logs.String(), "peer="+p.key.Public().String()[:8]) {
		t.Errorf("the line is not a warning naming the peer:\n%s", logs.String())
	}
	st, _ := e.tun.Peer(p.key.Public())
	if st.SilentSince.IsZero() || clk.Now().Sub(st.SilentSince) < PeerSilentAfter {
		t.Errorf("status: silent since %v, at %v", st.SilentSince, clk.Now())
	}
	retry() // further retries do not log again
	retry()
	if n := silent(); n != 1 {
		t.Errorf("%d lines after another retry, want 1", n)
	}

	// The peer answers the next retry.
	advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
	p.respond()
	p.recvData(5 * time.Second) // the packet that waited
	waitFor(t, 5*time.Second, func() bool { return answers() == 1 }, func() string { return logs.String() })
	if !strings.Contains(logs.String(), "level=INFO msg=\""+msgPeerAnswers) {
		t.Errorf("the answer is not logged at info:\n%s", logs.String())
	}
	if st, _ := e.tun.Peer(p.key.Public()); !st.SilentSince.IsZero() {
		t.Errorf("status after the answer: silent since %v", st.SilentSince)
	}

	// Silent again at once: within peerSilentRelog, not logged. The keys
	// must go first, or the data would flow on them unanswered.
	e.tun.forgetKeypairs(tp.session.Reset(clk.Now(), false))
	goSilent(1, 1)
	if st, _ := e.tun.Peer(p.key.Public()); st.SilentSince.IsZero() {
		t.Errorf("status of the second silence: none")
	}
	// It ends with no line (none said it began); past peerSilentRelog
	// since the first line, a third silence is logged again.
	advance(e, clk, noise.RekeyTimeout+noise.RekeyTimeoutJitterMax)
	time.Sleep(noise.HandshakeInitiationRate) // the raw peer's flood check runs on the real clock
	p.respond()
	p.recvData(5 * time.Second)
	advance(e, clk, peerSilentRelog)
	if n := answers(); n != 1 {
		t.Errorf("%d lines of answers, want 1:\n%s", n, logs.String())
	}
	e.tun.forgetKeypairs(tp.session.Reset(clk.Now(), false))
	goSilent(1, 2)
}
