package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"pipeguard/noise"
	"pipeguard/stages"
)

// TestWarnOverlaps: a prefix listed for
// two peers was accepted silently, one peer ending up without it. Now
// start-up and every reload warn, naming the prefix and both peers.
func TestWarnOverlaps(t *testing.T) {
	key := func() noise.PublicKey {
		k, err := noise.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	a, b, c := key(), key(), key()
	peers := []stages.PeerConfig{
		{PublicKey: a, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/24")}},
		{PublicKey: b, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}},
		{PublicKey: c, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/24")}},
	}
	var buf bytes.Buffer
	warnOverlaps(slog.New(slog.NewJSONHandler(&buf, nil)), peers)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{`"level":"WARN"`, `"prefix":"10.1.0.0/24"`, `"peer":"` + a.String() + `"`, `"taken_by":"` + b.String() + `"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("warning %q lacks %q", lines[0], want)
		}
	}
	buf.Reset()
	warnOverlaps(slog.New(slog.NewJSONHandler(&buf, nil)), peers[1:])
	if buf.Len() != 0 {
		t.Errorf("warning without an overlap: %s", buf.String())
	}
}
