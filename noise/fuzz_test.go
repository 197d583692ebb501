package noise

import (
	"encoding/base64"
	"testing"
	"time"

	"pipeguard/wire"
)

// The fuzz targets feed arbitrary bytes to every parser of the package.
// A leading flag byte, when odd, makes the target recompute MAC1 (and the
// message type) so that the fuzzer also reaches the code behind the MAC1
// gate instead of only ever hitting ErrMAC1.

func FuzzConsumeInitiation(f *testing.F) {
	ini, resp := newPair(f, PresharedKey{}, PresharedKey{})
	checker := NewCookieChecker(resp.static)
	f.Add(byte(0), initiation(f, ini, t0))
	f.Add(byte(1), make([]byte, wire.InitiationSize))
	f.Add(byte(0), []byte{1, 0, 0, 0})
	var g CookieGenerator
	g.Init(resp.static.PublicKey())
	now := t0
	f.Fuzz(func(t *testing.T, flag byte, b []byte) {
		if flag&1 == 1 && len(b) == wire.InitiationSize {
			b[0], b[1], b[2], b[3] = 1, 0, 0, 0
			g.AddMACs(b, now)
		}
		now = now.Add(time.Second) // past the flood limit: reach every check
		var reply wire.CookieReply
		checker.Admit(b, srcA, flag&2 == 2, now, &reply)
		h, err := resp.static.ConsumeInitiation(b, now, resp.lookup)
		if (h == nil) == (err == nil) {
			t.Fatalf("handshake %v with error %v", h, err)
		}
	})
}

func FuzzConsumeResponse(f *testing.F) {
	ini, resp := newPair(f, PresharedKey{}, PresharedKey{})
	if _, err := resp.static.ConsumeInitiation(initiation(f, ini, t0), t0, resp.lookup); err != nil {
		f.Fatal(err)
	}
	r, _ := respond(f, resp, t0)
	f.Add(byte(0), r)
	f.Add(byte(1), make([]byte, wire.ResponseSize))
	var g CookieGenerator
	g.Init(ini.static.PublicKey())
	f.Fuzz(func(t *testing.T, flag byte, b []byte) {
		if ini.hs.State() != HandshakeInitiationCreated {
			initiation(t, ini, t0) // the last input completed the handshake
		}
		if flag&1 == 1 && len(b) == wire.ResponseSize {
			b[0], b[1], b[2], b[3] = 2, 0, 0, 0
			if flag&2 == 2 { // aim at the handshake in progress
				ini.hs.mu.Lock()
				i := ini.hs.localIndex
				ini.hs.mu.Unlock()
				b[8], b[9], b[10], b[11] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
			}
			g.AddMACs(b, t0)
		}
		h, kp, err := ini.static.ConsumeResponse(b, t0, &ini.table)
		if (err == nil) != (h != nil && kp != nil) {
			t.Fatalf("results %v %v with error %v", h, kp, err)
		}
		if kp != nil {
			ini.table.Delete(kp.LocalIndex)
		}
	})
}

func FuzzConsumeCookieReply(f *testing.F) {
	ini, resp := newPair(f, PresharedKey{}, PresharedKey{})
	checker := NewCookieChecker(resp.static)
	b := initiation(f, ini, t0)
	reply := checker.CreateReply(b, 0, srcA, t0)
	ini.hs.mu.Lock()
	reply.Receiver = ini.hs.localIndex
	ini.hs.mu.Unlock()
	var rb [wire.CookieReplySize]byte
	reply.Marshal(&rb)
	f.Add(rb[:])
	f.Add(make([]byte, wire.CookieReplySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ConsumeCookieReply(b, t0, &ini.table)
		if (h == nil) == (err == nil) {
			t.Fatalf("handshake %v with error %v", h, err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add("YNqHbfBQKaGvzefSSuIOiI0ZbT7Yx7x6sDhzbDXSMHA=")
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err1 := ParsePublicKey(s)
		priv, err2 := ParsePrivateKey(s)
		psk, err3 := ParsePresharedKey(s)
		if err1 != err2 || err2 != err3 {
			t.Fatal("parsers disagree")
		}
		if err1 != nil {
			return
		}
		// Accepted keys have one text form, and it is what wg prints.
		if pub.String() != s || priv.String() != s || psk.String() != s {
			t.Fatalf("%q is not canonical", s)
		}
		if b, err := base64.StdEncoding.DecodeString(s); err != nil || [32]byte(b) != [32]byte(pub) {
			t.Fatalf("%q decodes differently with encoding/base64", s)
		}
	})
}
