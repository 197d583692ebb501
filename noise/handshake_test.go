package noise

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"pipeguard/wire"
)

// side is one end of an in-memory handshake: identity, index table, and
// the handshake state it keeps for the other end.
type side struct {
	static *Static
	table  IndexTable
	hs     *Handshake
	dhs    atomic.Int64 // Curve25519 operations done by static, once counted
}

func (s *side) lookup(pub PublicKey) *Handshake {
	if s.hs != nil && s.hs.Remote().Equal(pub) {
		return s.hs
	}
	return nil
}

func (s *side) countDH() { s.static.onDH = func() { s.dhs.Add(1) } }

func newStatic(t testing.TB) *Static {
	t.Helper()
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStatic(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newPair makes an initiator and a responder that know each other, with
// the given pre-shared keys (equal unless a test wants a mismatch).
func newPair(t testing.TB, pskI, pskR PresharedKey) (ini, resp *side) {
	t.Helper()
	ini, resp = &side{static: newStatic(t)}, &side{static: newStatic(t)}
	var err error
	if ini.hs, err = NewHandshake(ini.static, resp.static.PublicKey(), pskI, 1); err != nil {
		t.Fatal(err)
	}
	if resp.hs, err = NewHandshake(resp.static, ini.static.PublicKey(), pskR, 2); err != nil {
		t.Fatal(err)
	}
	return ini, resp
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func initiation(t testing.TB, s *side, now time.Time) []byte {
	t.Helper()
	var msg wire.Initiation
	if err := s.hs.CreateInitiation(now, &s.table, &msg); err != nil {
		t.Fatal(err)
	}
	var b [wire.InitiationSize]byte
	msg.Marshal(&b)
	return b[:]
}

func respond(t testing.TB, s *side, now time.Time) ([]byte, *Keypair) {
	t.Helper()
	var msg wire.Response
	kp, err := s.hs.CreateResponse(now, &s.table, &msg)
	if err != nil {
		t.Fatal(err)
	}
	var b [wire.ResponseSize]byte
	msg.Marshal(&b)
	return b[:], kp
}

// handshake runs a complete handshake and returns both keypairs.
func handshake(t testing.TB, ini, resp *side, now time.Time) (kpI, kpR *Keypair) {
	t.Helper()
	init := initiation(t, ini, now)
	if _, err := resp.static.ConsumeInitiation(init, now, resp.lookup); err != nil {
		t.Fatalf("ConsumeInitiation: %v", err)
	}
	r, kpR := respond(t, resp, now)
	h, kpI, err := ini.static.ConsumeResponse(r, now, &ini.table)
	if err != nil {
		t.Fatalf("ConsumeResponse: %v", err)
	}
	if h != ini.hs {
		t.Fatal("ConsumeResponse returned another handshake")
	}
	return kpI, kpR
}

// exchange seals a packet with from and opens it with to.
func exchange(t testing.TB, from, to *Keypair, payload []byte) {
	t.Helper()
	var p wire.Packet
	if err := p.SetInner(payload); err != nil {
		t.Fatal(err)
	}
	counter, err := from.Seal(&p)
	if err != nil {
		t.Fatal(err)
	}
	h, err := wire.ParseTransportHeader(p.Message())
	if err != nil || h.Receiver != to.LocalIndex || h.Counter != counter {
		t.Fatalf("header %+v, err %v; want receiver %d", h, err, to.LocalIndex)
	}
	if err := to.Open(&p, h.Counter); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(p.Inner()[:len(payload)], payload) {
		t.Fatal("payload differs")
	}
}

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name string
		psk  PresharedKey
	}{{"no psk", PresharedKey{}}, {"psk", PresharedKey{1, 2, 3, 31: 4}}} {
		t.Run(tc.name, func(t *testing.T) {
			ini, resp := newPair(t, tc.psk, tc.psk)
			kpI, kpR := handshake(t, ini, resp, t0)
			if !kpI.Initiator || kpR.Initiator {
				t.Fatal("initiator flags wrong")
			}
			if kpI.LocalIndex != kpR.RemoteIndex || kpR.LocalIndex != kpI.RemoteIndex {
				t.Fatal("indices do not match")
			}
			exchange(t, kpI, kpR, []byte("from the initiator"))
			exchange(t, kpR, kpI, []byte("from the responder"))

			for _, s := range []*side{ini, resp} {
				kp := kpI
				if s == resp {
					kp = kpR
				}
				e, ok := s.table.Lookup(kp.LocalIndex)
				if !ok || e.Keypair != kp || e.Handshake != s.hs || e.Peer != s.hs.Peer() {
					t.Fatalf("index entry %+v", e)
				}
				if s.table.Len() != 1 {
					t.Fatalf("table has %d entries", s.table.Len())
				}
				assertErased(t, s.hs)
			}
		})
	}
}

// assertErased checks that a completed handshake kept no secrets.
func assertErased(t *testing.T, h *Handshake) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != HandshakeZeroed || h.run != nil || h.localIndex != 0 {
		t.Fatalf("handshake not erased: state %v", h.state)
	}
}

func TestHandshakeRepeated(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	now := t0
	for range 3 {
		kpI, kpR := handshake(t, ini, resp, now)
		exchange(t, kpI, kpR, []byte("x"))
		now = now.Add(time.Second)
	}
	// Roles swapped: the responder initiates.
	kpR, kpI := handshake(t, resp, ini, now)
	exchange(t, kpR, kpI, []byte("y"))
}

func TestMAC1ForgedRejectedBeforeDH(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	resp.countDH()
	b := initiation(t, ini, t0)
	b[wire.InitiationMAC1Offset] ^= 1
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); !errors.Is(err, ErrMAC1) {
		t.Fatalf("err = %v, want ErrMAC1", err)
	}
	if n := resp.dhs.Load(); n != 0 {
		t.Fatalf("%d DH operations for a forged MAC1", n)
	}
	if resp.hs.State() != HandshakeZeroed || resp.hs.lastTimestamp != (Timestamp{}) {
		t.Fatal("forged initiation changed the handshake")
	}
	// A forged body with a valid MAC1 costs DH but is still rejected.
	b[wire.InitiationMAC1Offset] ^= 1
	b[50] ^= 1
	ini.hs.cookies.AddMACs(b, t0)
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); !errors.Is(err, ErrHandshakeAuth) {
		t.Fatalf("err = %v, want ErrHandshakeAuth", err)
	}
	if resp.dhs.Load() == 0 {
		t.Fatal("DH hook not called: the MAC1 check above proves nothing")
	}

	// The same for a response, on the initiator side.
	b = initiation(t, ini, t0.Add(time.Second))
	if _, err := resp.static.ConsumeInitiation(b, t0.Add(time.Second), resp.lookup); err != nil {
		t.Fatal(err)
	}
	r, _ := respond(t, resp, t0)
	r[wire.ResponseMAC1Offset+3] ^= 0x80
	ini.countDH()
	if _, _, err := ini.static.ConsumeResponse(r, t0, &ini.table); !errors.Is(err, ErrMAC1) {
		t.Fatalf("response: err = %v, want ErrMAC1", err)
	}
	if ini.dhs.Load() != 0 || ini.hs.State() != HandshakeInitiationCreated {
		t.Fatal("forged response did DH work or changed the state")
	}
}

func TestInitiationReplayRejected(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	b := initiation(t, ini, t0)
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Minute) // well past the flood limit
	if _, err := resp.static.ConsumeInitiation(b, later, resp.lookup); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: err = %v", err)
	}
	// An older initiation made after the newer one was accepted.
	old := initiation(t, ini, t0.Add(-time.Second))
	if _, err := resp.static.ConsumeInitiation(old, later, resp.lookup); !errors.Is(err, ErrReplay) {
		t.Fatalf("older timestamp: err = %v", err)
	}
	fresh := initiation(t, ini, t0.Add(time.Second))
	if _, err := resp.static.ConsumeInitiation(fresh, later, resp.lookup); err != nil {
		t.Fatalf("fresh: %v", err)
	}
}

func TestInitiationFloodRejected(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	if _, err := resp.static.ConsumeInitiation(initiation(t, ini, t0), t0, resp.lookup); err != nil {
		t.Fatal(err)
	}
	// A genuine, newer initiation, but too soon after the last one.
	b := initiation(t, ini, t0.Add(time.Second))
	soon := t0.Add(HandshakeInitiationRate / 2)
	if _, err := resp.static.ConsumeInitiation(b, soon, resp.lookup); !errors.Is(err, ErrFlood) {
		t.Fatalf("err = %v, want ErrFlood", err)
	}
	// Rejected as a flood, it was not recorded: it is accepted once the
	// rate allows.
	if _, err := resp.static.ConsumeInitiation(b, t0.Add(2*HandshakeInitiationRate), resp.lookup); err != nil {
		t.Fatalf("after the rate: %v", err)
	}
}

func TestPSKMismatchFails(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{1}, PresharedKey{2})
	b := initiation(t, ini, t0)
	// The pre-shared key enters only with the response.
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); err != nil {
		t.Fatal(err)
	}
	r, _ := respond(t, resp, t0)
	if _, _, err := ini.static.ConsumeResponse(r, t0, &ini.table); !errors.Is(err, ErrHandshakeAuth) {
		t.Fatalf("err = %v, want ErrHandshakeAuth", err)
	}
	if ini.hs.State() != HandshakeInitiationCreated {
		t.Fatal("a failed response changed the initiator's state")
	}
	// With one side lacking a PSK entirely.
	ini, resp = newPair(t, PresharedKey{}, PresharedKey{9})
	handshakeFails(t, ini, resp)
}

func handshakeFails(t *testing.T, ini, resp *side) {
	t.Helper()
	if _, err := resp.static.ConsumeInitiation(initiation(t, ini, t0), t0, resp.lookup); err != nil {
		t.Fatal(err)
	}
	r, _ := respond(t, resp, t0)
	if _, _, err := ini.static.ConsumeResponse(r, t0, &ini.table); !errors.Is(err, ErrHandshakeAuth) {
		t.Fatalf("err = %v, want ErrHandshakeAuth", err)
	}
}

func TestWrongStaticKeyFails(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	// The responder knows some other peer, not the initiator.
	other := newStatic(t)
	var err error
	if resp.hs, err = NewHandshake(resp.static, other.PublicKey(), PresharedKey{}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := resp.static.ConsumeInitiation(initiation(t, ini, t0), t0, resp.lookup); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: err = %v", err)
	}

	// The initiator has the wrong key for the responder: MAC1 is keyed
	// with the public key it believes in, so the real responder drops it.
	wrong, _ := newPair(t, PresharedKey{}, PresharedKey{})
	if _, err := resp.static.ConsumeInitiation(initiation(t, wrong, t0), t0, resp.lookup); !errors.Is(err, ErrMAC1) {
		t.Fatalf("wrong responder key: err = %v", err)
	}
	// Even with a MAC1 the responder accepts, the static key does not
	// decrypt.
	b := initiation(t, wrong, t0)
	var g CookieGenerator
	g.Init(resp.static.PublicKey())
	g.AddMACs(b, t0)
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); !errors.Is(err, ErrHandshakeAuth) {
		t.Fatalf("wrong responder key, valid MAC1: err = %v", err)
	}
}

func TestHandshakeErrors(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{}, PresharedKey{})
	var r wire.Response
	if _, err := resp.hs.CreateResponse(t0, &resp.table, &r); !errors.Is(err, ErrHandshakeState) {
		t.Fatalf("response without initiation: %v", err)
	}
	// A response to an index we never allocated.
	b := initiation(t, ini, t0)
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); err != nil {
		t.Fatal(err)
	}
	rb, _ := respond(t, resp, t0)
	ini.hs.Clear(&ini.table)
	if ini.table.Len() != 0 {
		t.Fatal("Clear left the index")
	}
	if _, _, err := ini.static.ConsumeResponse(rb, t0, &ini.table); !errors.Is(err, ErrUnknownIndex) {
		t.Fatalf("unknown index: %v", err)
	}
	// Wrong size and type are the wire errors.
	if _, err := resp.static.ConsumeInitiation(rb, t0, resp.lookup); !errors.Is(err, wire.ErrType) {
		t.Fatalf("response as initiation: %v", err)
	}
	if _, _, err := ini.static.ConsumeResponse(rb[:50], t0, &ini.table); !errors.Is(err, wire.ErrSize) {
		t.Fatalf("short response: %v", err)
	}
	// A low-order ephemeral key with a valid MAC1.
	b = initiation(t, ini, t0.Add(time.Second))
	clear(b[8:40])
	ini.hs.cookies.AddMACs(b, t0)
	if _, err := resp.static.ConsumeInitiation(b, t0, resp.lookup); !errors.Is(err, ErrLowOrderPoint) {
		t.Fatalf("zero ephemeral: %v", err)
	}
	if _, err := NewStatic(PrivateKey{}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("zero private key: %v", err)
	}
}

// TestSimultaneousInitiation: both sides initiate; the responder's
// answer to the peer's initiation wins and the initiator's own stale
// index is freed.
func TestSimultaneousInitiation(t *testing.T) {
	a, b := newPair(t, PresharedKey{}, PresharedKey{})
	ia := initiation(t, a, t0)
	_ = initiation(t, b, t0)
	if _, err := b.static.ConsumeInitiation(ia, t0, b.lookup); err != nil {
		t.Fatal(err)
	}
	r, kpB := respond(t, b, t0)
	if b.table.Len() != 1 {
		t.Fatalf("b's table has %d entries, want only the keypair", b.table.Len())
	}
	_, kpA, err := a.static.ConsumeResponse(r, t0, &a.table)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, kpA, kpB, []byte("z"))
}

// TestHandshakeWithoutIdentity: a tunnel with no private key keeps its
// peers' handshakes without a Static. They start nothing, accept no
// initiation, and still tell a peer key no handshake could work with.
func TestHandshakeWithoutIdentity(t *testing.T) {
	us, peer := newStatic(t), &side{static: newStatic(t)}
	if h, err := NewHandshake(nil, PublicKey{}, PresharedKey{}, 1); err != nil || !h.LowOrder() {
		t.Fatalf("zero peer key without identity: %v, want it accepted as low order", err)
	}
	h, err := NewHandshake(nil, peer.static.PublicKey(), PresharedKey{3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var table IndexTable
	var msg wire.Initiation
	if err := h.CreateInitiation(t0, &table, &msg); !errors.Is(err, ErrNoPrivateKey) {
		t.Fatalf("CreateInitiation without identity: %v, want ErrNoPrivateKey", err)
	}
	if table.Len() != 0 || h.State() != HandshakeZeroed {
		t.Fatalf("a refused initiation left %d indices, state %v", table.Len(), h.State())
	}
	// The peer's initiation to an identity finds no use for the handshake
	// without one, even when the lookup hands it over.
	if peer.hs, err = NewHandshake(peer.static, us.PublicKey(), PresharedKey{}, 2); err != nil {
		t.Fatal(err)
	}
	b := initiation(t, peer, t0)
	if _, err := us.ConsumeInitiation(b, t0, func(PublicKey) *Handshake { return h }); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("initiation matched a handshake without identity: %v", err)
	}
}

// slowCheck is what CheckPublicKey stands for: the key's Diffie-Hellman
// result with a clamped private key is all zero.
func slowCheck(pk PublicKey) error {
	k := PrivateKey{0: 8, 31: 64}
	_, err := sharedSecret(&k, &pk)
	return err
}

// TestCheckPublicKey: CheckPublicKey compares with a list instead of
// doing the Curve25519 operation; it must agree with the operation on
// every listed key, with its top bit set too, and on keys next to them
// and at random.
func TestCheckPublicKey(t *testing.T) {
	var cases []PublicKey
	for _, pk := range lowOrder {
		if err := CheckPublicKey(pk); !errors.Is(err, ErrLowOrderPoint) {
			t.Errorf("CheckPublicKey(%x) = %v, want ErrLowOrderPoint", pk, err)
		}
		cases = append(cases, pk)
		hi := pk
		hi[31] |= 0x80
		cases = append(cases, hi)
		for _, i := range []int{0, 1, 16, 31} {
			for _, d := range []byte{1, 0xff, 0x40} {
				near := pk
				near[i] += d
				cases = append(cases, near)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 2000 {
		var pk PublicKey
		for i := range pk {
			pk[i] = byte(r.Uint32())
		}
		cases = append(cases, pk)
	}
	cases = append(cases, newStatic(t).PublicKey())
	for _, pk := range cases {
		fast, slow := CheckPublicKey(pk), slowCheck(pk)
		if !errors.Is(fast, ErrLowOrderPoint) && fast != nil || fast != slow {
			t.Errorf("CheckPublicKey(%x) = %v, X25519 says %v", pk, fast, slow)
		}
	}
	// Scalars other than the one slowCheck uses send the same keys to zero.
	for _, pk := range lowOrder {
		if _, err := sharedSecret(&newStatic(t).private, &pk); !errors.Is(err, ErrLowOrderPoint) {
			t.Errorf("X25519 of a random key with %x = %v", pk, err)
		}
	}
}

// TestStaticDHIsLazy: making a peer's handshake and changing our key do
// no Curve25519 work; the first handshake computes the static-static DH
// once, and later handshakes reuse it.
func TestStaticDHIsLazy(t *testing.T) {
	ini, resp := &side{static: newStatic(t)}, &side{static: newStatic(t)}
	ini.countDH()
	resp.countDH()
	var err error
	if ini.hs, err = NewHandshake(ini.static, resp.static.PublicKey(), PresharedKey{}, 1); err != nil {
		t.Fatal(err)
	}
	if resp.hs, err = NewHandshake(resp.static, ini.static.PublicKey(), PresharedKey{}, 2); err != nil {
		t.Fatal(err)
	}
	ini.hs.SetLocal(ini.static, &ini.table)
	if n := ini.dhs.Load() + resp.dhs.Load(); n != 0 {
		t.Fatalf("making handshakes and setting the key did %d Curve25519 operations, want 0", n)
	}
	// Initiator: ephemeral-static and static-static; responder: two
	// ephemeral ones and static-static; the response two more.
	handshake(t, ini, resp, t0)
	first := ini.dhs.Load() + resp.dhs.Load()
	handshake(t, ini, resp, t0.Add(time.Minute))
	second := ini.dhs.Load() + resp.dhs.Load() - first
	if first-second != 2 {
		t.Fatalf("first handshake %d operations, second %d: want the static-static DH once per side, so 2 fewer", first, second)
	}
}

// TestSetLocal: after our private key changes, a handshake in progress
// is abandoned (its index freed, so the response to it finds nothing),
// an initiation made for the old key is refused, and handshakes with
// the new key work both ways. Setting no identity stops initiations.
func TestSetLocal(t *testing.T) {
	ini, resp := newPair(t, PresharedKey{5}, PresharedKey{5})
	stale := initiation(t, ini, t0) // to resp's old key
	if _, err := resp.static.ConsumeInitiation(stale, t0, resp.lookup); err != nil {
		t.Fatal(err)
	}
	respond(t, resp, t0) // a session resp keeps in its table
	// resp initiates too, and ini answers; the answer is still under way.
	pending := initiation(t, resp, t0.Add(time.Second))
	if _, err := ini.static.ConsumeInitiation(pending, t0.Add(time.Second), ini.lookup); err != nil {
		t.Fatal(err)
	}
	answer, _ := respond(t, ini, t0.Add(time.Second))

	// resp gets a new key.
	old, next := resp.static, newStatic(t)
	resp.hs.SetLocal(next, &resp.table)
	resp.static = next
	if resp.hs.State() != HandshakeZeroed {
		t.Errorf("state after SetLocal %v", resp.hs.State())
	}
	// The session's index stays (the session owns it, not the handshake);
	// the handshake's is gone.
	if n := resp.table.Len(); n != 1 {
		t.Errorf("resp's table has %d entries, want the session's alone", n)
	}
	if _, _, err := old.ConsumeResponse(answer, t0.Add(time.Second), &resp.table); !errors.Is(err, ErrUnknownIndex) {
		t.Errorf("response to the abandoned initiation: %v, want ErrUnknownIndex", err)
	}
	if _, err := old.ConsumeInitiation(initiation(t, ini, t0.Add(2*time.Second)), t0, resp.lookup); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("initiation to the old key: %v, want ErrUnknownPeer", err)
	}
	if _, err := next.ConsumeInitiation(stale, t0, resp.lookup); !errors.Is(err, ErrMAC1) {
		t.Errorf("initiation for the old key to the new one: %v, want ErrMAC1", err)
	}

	// ini is told the new key: handshakes work again, either side first.
	var err error
	if ini.hs, err = NewHandshake(ini.static, next.PublicKey(), PresharedKey{5}, 1); err != nil {
		t.Fatal(err)
	}
	kpI, kpR := handshake(t, ini, resp, t0.Add(3*time.Second))
	exchange(t, kpI, kpR, []byte("new key, ini first"))
	kpR2, kpI2 := handshake(t, resp, ini, t0.Add(4*time.Second))
	exchange(t, kpI2, kpR2, []byte("new key, resp first"))

	resp.hs.SetLocal(nil, &resp.table)
	var msg wire.Initiation
	if err := resp.hs.CreateInitiation(t0, &resp.table, &msg); !errors.Is(err, ErrNoPrivateKey) {
		t.Errorf("initiation after SetLocal(nil): %v", err)
	}
}

// TestLowOrderPeer: a peer whose public key is a low-order point is
// accepted, as the kernel accepts it, and no handshake with it ever
// completes: no initiation is made to it (before or after the local key
// is set), and an initiation that claims its key is refused. Such an
// initiation is easy to forge, because the static-static DH that should
// prove the sender's identity is all zero for everyone: the test forges
// one and shows that the low-order mark stops it, and the DH's zero
// check behind it.
func TestLowOrderPeer(t *testing.T) {
	for _, hx := range lowOrderPoints {
		point := PublicKey(mustHex32(t, hx))
		t.Run(hx[:8], func(t *testing.T) {
			victim := newStatic(t)
			h, err := NewHandshake(victim, point, PresharedKey{}, 1)
			if err != nil || !h.LowOrder() {
				t.Fatalf("NewHandshake: %v, low order %v", err, err == nil && h.LowOrder())
			}
			var table IndexTable
			var msg wire.Initiation
			if err := h.CreateInitiation(t0, &table, &msg); !errors.Is(err, ErrLowOrderPoint) {
				t.Fatalf("CreateInitiation to a low-order peer: %v", err)
			}
			if table.Len() != 0 || h.State() != HandshakeZeroed {
				t.Fatalf("refused initiation left %d indices, state %v", table.Len(), h.State())
			}
			// Without a key first, then with one: still refused.
			later, err := NewHandshake(nil, point, PresharedKey{}, 2)
			if err != nil || !later.LowOrder() {
				t.Fatalf("NewHandshake without identity: %v", err)
			}
			later.SetLocal(victim, &table)
			if err := later.CreateInitiation(t0, &table, &msg); !errors.Is(err, ErrLowOrderPoint) {
				t.Fatalf("CreateInitiation after SetLocal: %v", err)
			}

			// The forger claims the low-order key; it needs no private
			// key for it, since the DH the victim checks is zero.
			k, _ := GeneratePrivateKey()
			forger := &side{static: &Static{private: k, public: point}}
			if forger.hs, err = NewHandshake(forger.static, victim.PublicKey(), PresharedKey{}, 3); err != nil {
				t.Fatal(err)
			}
			forger.hs.ss, forger.hs.ssReady = [KeySize]byte{}, true // what the victim computes
			b := initiation(t, forger, t0)
			lookup := func(pk PublicKey) *Handshake {
				if pk == point {
					return h
				}
				return nil
			}
			if _, err := victim.ConsumeInitiation(b, t0, lookup); !errors.Is(err, ErrLowOrderPoint) {
				t.Fatalf("forged initiation from a low-order key: %v, want ErrLowOrderPoint", err)
			}
			// Without the mark, the static-static DH refuses its zero
			// result; without either, the forgery would pass.
			h.lowOrder = false
			if _, err := victim.ConsumeInitiation(b, t0, lookup); !errors.Is(err, ErrLowOrderPoint) {
				t.Fatalf("forged initiation, unmarked peer: %v, want ErrLowOrderPoint from the DH", err)
			}
			h.ss, h.ssReady = [KeySize]byte{}, true
			if _, err := victim.ConsumeInitiation(b, t0, lookup); err != nil {
				t.Fatalf("the forgery is not one: %v", err)
			}
		})
	}
}
