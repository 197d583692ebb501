package noise

import (
	"errors"
	"testing"
	"time"

	"pipeguard/wire"
)

var srcA, srcB = []byte{10, 0, 0, 1, 0x1f, 0x90}, []byte{10, 0, 0, 2, 0x1f, 0x90}

// TestCookieRoundTrip: an initiation to a loaded responder is answered
// with a cookie reply; the initiator's next initiation carries MAC2 and
// is admitted.
func TestCookieRoundTrip(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	checker := NewCookieChecker(resp.static)
	var reply wire.CookieReply

	b := initiation(t, ini, t0)
	if err := checker.Admit(b, srcA, false, t0, &reply); err != nil {
		t.Fatalf("not under load: %v", err)
	}
	resp.countDH()
	if err := checker.Admit(b, srcA, true, t0, &reply); !errors.Is(err, ErrCookieRequired) {
		t.Fatalf("under load without MAC2: %v", err)
	}
	if resp.dhs.Load() != 0 {
		t.Fatal("the cookie path did Curve25519 work")
	}
	if e, ok := ini.table.Lookup(reply.Receiver); !ok || e.Handshake != ini.hs {
		t.Fatal("cookie reply not addressed to the initiation's sender index")
	}
	var rb [wire.CookieReplySize]byte
	reply.Marshal(&rb)
	h, err := ConsumeCookieReply(rb[:], t0, &ini.table)
	if err != nil || h != ini.hs {
		t.Fatalf("ConsumeCookieReply: %v", err)
	}

	b = initiation(t, ini, t0.Add(time.Second))
	if isZero(b[wire.InitiationMAC2Offset:]) {
		t.Fatal("no MAC2 after a cookie")
	}
	if err := checker.Admit(b, srcA, true, t0.Add(time.Second), &reply); err != nil {
		t.Fatalf("under load with MAC2: %v", err)
	}
	if err := checker.Admit(b, srcB, true, t0.Add(time.Second), &reply); !errors.Is(err, ErrCookieRequired) {
		t.Fatalf("MAC2 from another address: %v", err)
	}
	if _, err := resp.static.ConsumeInitiation(b, t0.Add(time.Second), resp.lookup); err != nil {
		t.Fatal(err)
	}

	// The initiator stops using the cookie after CookieRefreshTime.
	late := t0.Add(CookieRefreshTime + time.Second)
	b = initiation(t, ini, late)
	if !isZero(b[wire.InitiationMAC2Offset:]) {
		t.Fatal("MAC2 from an expired cookie")
	}
	// A response gets the cookie treatment too.
	if _, err := resp.static.ConsumeInitiation(b, late, resp.lookup); err != nil {
		t.Fatal(err)
	}
	r, _ := respond(t, resp, late)
	if err := NewCookieChecker(ini.static).Admit(r, srcB, true, late, &reply); !errors.Is(err, ErrCookieRequired) {
		t.Fatalf("response under load: %v", err)
	}
}

func TestCookieSecretRotation(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	checker := NewCookieChecker(resp.static)
	getCookie := func(now time.Time) {
		t.Helper()
		b := initiation(t, ini, now)
		reply := checker.CreateReply(b, 0, srcA, now)
		if err := ini.hs.cookies.ConsumeReply(&reply, now); err != nil {
			t.Fatal(err)
		}
	}
	getCookie(t0)
	secret := checker.secret

	b := initiation(t, ini, t0)
	if !checker.CheckMAC2(b, srcA, t0.Add(CookieRefreshTime)) {
		t.Fatal("cookie invalid before the secret is CookieRefreshTime old")
	}
	after := t0.Add(CookieRefreshTime + time.Nanosecond)
	if checker.CheckMAC2(b, srcA, after) {
		t.Fatal("cookie valid after the secret expired")
	}
	// The next reply renews the secret; the old cookie stays invalid.
	getCookie(after)
	if checker.secret == secret || !checker.secretSet.Equal(after) {
		t.Fatal("secret not rotated")
	}
	if checker.CheckMAC2(b, srcA, after) {
		t.Fatal("old cookie valid under the new secret")
	}
	b = initiation(t, ini, after)
	if !checker.CheckMAC2(b, srcA, after) {
		t.Fatal("new cookie invalid")
	}
	// No rotation before it is due.
	checker.CreateReply(b, 0, srcA, after.Add(time.Minute))
	if !checker.secretSet.Equal(after) {
		t.Fatal("secret rotated early")
	}
}

func TestCookieReplyErrors(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	checker := NewCookieChecker(resp.static)
	b := initiation(t, ini, t0)
	reply := checker.CreateReply(b, 0, srcA, t0)

	// Bound to the MAC1 of the message answered: after another message,
	// the reply no longer opens.
	initiation(t, ini, t0.Add(time.Second))
	if err := ini.hs.cookies.ConsumeReply(&reply, t0); !errors.Is(err, ErrCookieReply) {
		t.Fatalf("stale reply: %v", err)
	}
	var fresh CookieGenerator
	fresh.Init(resp.static.PublicKey())
	if err := fresh.ConsumeReply(&reply, t0); !errors.Is(err, ErrCookieReply) {
		t.Fatalf("reply with no message sent: %v", err)
	}
	b = initiation(t, ini, t0.Add(2*time.Second))
	reply = checker.CreateReply(b, 12345, srcA, t0)
	reply.Cookie[0] ^= 1
	if err := ini.hs.cookies.ConsumeReply(&reply, t0); !errors.Is(err, ErrCookieReply) {
		t.Fatalf("forged reply: %v", err)
	}
	var rb [wire.CookieReplySize]byte
	reply.Marshal(&rb)
	if _, err := ConsumeCookieReply(rb[:], t0, &ini.table); !errors.Is(err, ErrUnknownIndex) {
		t.Fatalf("unknown index: %v", err)
	}
	if _, err := ConsumeCookieReply(rb[:10], t0, &ini.table); !errors.Is(err, wire.ErrSize) {
		t.Fatalf("short: %v", err)
	}
}

func TestAdmitErrors(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	checker := NewCookieChecker(resp.static)
	var reply wire.CookieReply
	b := initiation(t, ini, t0)
	b[wire.InitiationMAC1Offset+15] ^= 1
	for _, underLoad := range []bool{false, true} {
		if err := checker.Admit(b, srcA, underLoad, t0, &reply); !errors.Is(err, ErrMAC1) {
			t.Fatalf("forged MAC1 (under load %v): %v", underLoad, err)
		}
	}
	for _, tc := range []struct {
		msg  []byte
		want error
	}{
		{nil, wire.ErrShort},
		{b[:100], wire.ErrSize},
		{append([]byte{4, 0, 0, 0}, make([]byte, 60)...), wire.ErrType},
		{append([]byte{1, 0, 1, 0}, make([]byte, 144)...), wire.ErrReserved},
	} {
		if err := checker.Admit(tc.msg, srcA, true, t0, &reply); !errors.Is(err, tc.want) {
			t.Errorf("len %d: err = %v, want %v", len(tc.msg), err, tc.want)
		}
	}
	if checker.CheckMAC1(b[:20]) || checker.CheckMAC2(b[:20], srcA, t0) {
		t.Fatal("MAC check of a short message passed")
	}
}
