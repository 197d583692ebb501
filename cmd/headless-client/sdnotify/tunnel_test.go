package sdnotify

import (
	"errors"
	"slices"
	"testing"
	"time"

	"pipeguard/noise"
	"pipeguard/stages"
)

func TestTunnelStatus(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	peer := func(n byte, handshake, silent time.Duration) stages.PeerStatus {
		p := stages.PeerStatus{PublicKey: noise.PublicKey{n}}
		if handshake > 0 {
			p.LastHandshake = now.Add(-handshake)
		}
		if silent > 0 {
			p.SilentSince = now.Add(-silent)
		}
		return p
	}
	// The names are the start of each key's base64.
	name := func(n byte) string { return noise.PublicKey{n}.String()[:8] }
	for _, tc := range []struct {
		name   string
		peers  []stages.PeerStatus
		health error
		want   string
	}{
		{"no peers", nil, nil, "0 peers, 0 with a handshake in the last 3 min"},
		{"one live", []stages.PeerStatus{peer(1, time.Minute, 0)}, nil, "1 peer, 1 with a handshake in the last 3 min"},
		{"one never", []stages.PeerStatus{peer(1, 0, 0)}, nil,
			"1 peer, 0 with a handshake in the last 3 min; without a session: " + name(1)},
		{"one too old, not answering", []stages.PeerStatus{peer(1, 4*time.Minute, 45*time.Second)}, nil,
			"1 peer, 0 with a handshake in the last 3 min; without a session: " + name(1) + " (not answering for 45s)"},
		{"many", []stages.PeerStatus{peer(1, time.Minute, 0), peer(2, 0, 0), peer(3, 0, 30*time.Second), peer(4, 0, 0), peer(5, 0, 0), peer(6, 0, 0)}, nil,
			"6 peers, 1 with a handshake in the last 3 min; without a session: " + name(2) + ", " + name(3) + " (not answering for 30s), " + name(4) + " and 2 more"},
		{"unhealthy", []stages.PeerStatus{peer(1, time.Minute, 0)}, errors.New("stage tunread wedged"),
			"1 peer, 1 with a handshake in the last 3 min; unhealthy: stage tunread wedged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TunnelStatus(slices.Values(tc.peers), now, tc.health); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
