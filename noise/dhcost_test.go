package noise

import (
	"testing"
	"time"
)

// TestDHPerMessage: the operations a budget charges for a received
// initiation and a received response are the ones the handshake does.
// The responder's and the initiator's Static count what goes through dh;
// the responder's ephemeral key is one more, made by PrivateKey.Public.
func TestDHPerMessage(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	handshake(t, ini, resp, t0) // the static-static DH, once per peer, is now cached
	ini.countDH()
	resp.countDH()
	now := t0.Add(time.Second)
	init := initiation(t, ini, now)
	ini.dhs.Store(0)
	if _, err := resp.static.ConsumeInitiation(init, now, resp.lookup); err != nil {
		t.Fatal(err)
	}
	r, _ := respond(t, resp, now)
	if got := resp.dhs.Load() + 1; got != DHPerInitiation {
		t.Errorf("a received initiation and its response cost %d X25519 operations, DHPerInitiation says %d", got, DHPerInitiation)
	}
	if _, _, err := ini.static.ConsumeResponse(r, now, &ini.table); err != nil {
		t.Fatal(err)
	}
	if got := ini.dhs.Load(); got != DHPerResponse {
		t.Errorf("a received response cost %d X25519 operations, DHPerResponse says %d", got, DHPerResponse)
	}
}

// TestMeasureDH: the cost is positive and below a generous bound (an
// operation takes tens of microseconds); more tries never measure more.
func TestMeasureDH(t *testing.T) {
	d := MeasureDH(8)
	if d <= 0 || d > 50*time.Millisecond {
		t.Fatalf("MeasureDH(8) = %v", d)
	}
	if d0 := MeasureDH(0); d0 <= 0 {
		t.Fatalf("MeasureDH(0) = %v: it should still time one", d0)
	}
	t.Logf("X25519: %v", d)
}
