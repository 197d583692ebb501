package noise

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"pipeguard/wire"
)

// Handshake errors. All are sentinels: the handshake workers count them
// without allocating and drops the message.
var (
	ErrHandshakeAuth  = errors.New("noise: handshake message failed authentication")
	ErrUnknownPeer    = errors.New("noise: initiation from an unknown peer")
	ErrReplay         = errors.New("noise: initiation timestamp not newer than the last accepted")
	ErrFlood          = errors.New("noise: initiations from this peer arrive faster than HandshakeInitiationRate")
	ErrUnknownIndex   = errors.New("noise: no handshake or session for this receiver index")
	ErrHandshakeState = errors.New("noise: handshake not in the state this message needs")
	// ErrNoPrivateKey is returned by CreateInitiation for a handshake made
	// without a local identity: a tunnel with no private key yet.
	ErrNoPrivateKey = errors.New("noise: no private key")
)

// zeroNonce is the nonce of every handshake AEAD: each key is used once.
var zeroNonce [chacha20poly1305.NonceSize]byte

// Static is our long-term identity: the private key, its public key, and
// what every handshake message to us needs derived from it. It is
// immutable once made, so it is safe for concurrent use; to change the
// private key, make a new Static (and new Handshakes, whose precomputed
// DH depends on it). Create one with NewStatic; the zero value is not
// usable.
type Static struct {
	private   PrivateKey
	public    PublicKey
	mac1Key   [hashSize]byte // HASH("mac1----" || public): checks MAC1 of messages to us
	cookieKey [hashSize]byte // HASH("cookie--" || public): encrypts our cookie replies
	hash0     [hashSize]byte // HASH(H0 || public): a responder's first hash

	// onDH, if set, is called before each Curve25519 operation done for
	// this identity; tests use it to prove that forged messages are
	// dropped before any.
	onDH func()
}

// NewStatic makes our identity from a private key. A zero key is
// ErrInvalidKey: it is what an unset configuration holds.
func NewStatic(private PrivateKey) (*Static, error) {
	if private.IsZero() {
		return nil, ErrInvalidKey
	}
	s := &Static{private: private, public: private.Public()}
	s.mac1Key = labelledHash(labelMAC1, &s.public)
	s.cookieKey = labelledHash(labelCookie, &s.public)
	s.hash0 = mixHash(&initialHash, s.public[:])
	return s, nil
}

// PublicKey returns our public key.
func (s *Static) PublicKey() PublicKey { return s.public }

// dh is every Curve25519 operation of the handshake.
func (s *Static) dh(priv *PrivateKey, pub *PublicKey) ([KeySize]byte, error) {
	if s.onDH != nil {
		s.onDH()
	}
	return sharedSecret(priv, pub)
}

// HandshakeState is where a Handshake stands. A completed handshake goes
// straight back to HandshakeZeroed: deriving the keypair erases it.
type HandshakeState uint8

// Handshake states.
const (
	HandshakeZeroed             HandshakeState = iota // nothing in progress
	HandshakeInitiationCreated                        // we initiated, awaiting the response
	HandshakeInitiationConsumed                       // peer initiated, we owe a response
)

func (s HandshakeState) String() string {
	switch s {
	case HandshakeZeroed:
		return "zeroed"
	case HandshakeInitiationCreated:
		return "initiation-created"
	case HandshakeInitiationConsumed:
		return "initiation-consumed"
	}
	return fmt.Sprintf("HandshakeState(%d)", uint8(s))
}

// Handshake is the Noise_IKpsk2 state we keep for one peer, as initiator
// and as responder, plus the peer's cookie for MAC2.
//
// Create one per peer with NewHandshake; the zero value is not usable. A
// Handshake made without a local identity (nil Static) belongs to a tunnel
// that has no private key yet: it starts nothing (ErrNoPrivateKey) and
// accepts nothing, since no Static's messages name it. Its
// methods are safe for concurrent use: mu serialises them (a timer retry
// and a received message may race), and no method holds mu while waiting
// for anything but the IndexTable's lock, which never waits for a
// Handshake.
//
// A peer that is configured and idle costs a Handshake of about 200
// bytes: the state of a handshake under way (run) and the cookie keys
// are made when a handshake starts, and dropped when it ends.
type Handshake struct {
	// Immutable after NewHandshake.
	remote   PublicKey
	peer     PeerID
	lowOrder bool // remote is a low-order point: no handshake can complete

	cookies CookieGenerator // has its own lock

	mu    sync.Mutex // guards the fields below
	local *Static    // nil: no private key; changed by SetLocal
	// ss is DH(our static, peer's static) for local once ssReady: computed
	// at the first handshake that needs it, not when the peer is made or
	// our key changes, so that configuring many peers, or changing the key
	// of a tunnel with many, costs no Curve25519 work until they talk.
	ss                   [KeySize]byte
	ssReady              bool
	psk                  PresharedKey
	state                HandshakeState
	run                  *handshakeRun // the handshake under way; nil when state is HandshakeZeroed
	localIndex           uint32        // our handshake index in the IndexTable; 0: none
	remoteIndex          uint32
	lastTimestamp        Timestamp // newest initiation timestamp accepted
	lastInitiationAccept time.Time // when we last accepted an initiation
}

// handshakeRun is the secret state of one handshake under way, from the
// first message to the keypair it derives; eraseLocked zeroes it.
type handshakeRun struct {
	hash            [hashSize]byte
	chainKey        [hashSize]byte
	localEphemeral  PrivateKey
	remoteEphemeral PublicKey
}

// NewHandshake prepares the handshake state of a peer with public key
// remote and an optional pre-shared key (zero for none). peer is the
// caller's handle, returned by IndexTable lookups. local may be nil: no
// private key yet. It does no Curve25519 work (see ss).
//
// A remote key that is a low-order point (the all-zero key among them)
// is accepted, as the kernel accepts it, and LowOrder reports it: the
// static-static DH with it is all zero, so anyone could compute it, and
// no handshake with such a peer ever completes. CreateInitiation and
// ConsumeInitiation refuse it with ErrLowOrderPoint (the kernel refuses
// the zero precomputed DH the same way). The error is nil for every
// 32-byte key.
func NewHandshake(local *Static, remote PublicKey, psk PresharedKey, peer PeerID) (*Handshake, error) {
	h := &Handshake{local: local, remote: remote, peer: peer, psk: psk}
	h.lowOrder = CheckPublicKey(remote) != nil
	h.cookies.init(&h.remote)
	return h, nil
}

// Remote returns the peer's public key.
func (h *Handshake) Remote() PublicKey { return h.remote }

// LowOrder reports whether the peer's public key is a low-order point,
// with which no handshake can complete (see NewHandshake).
func (h *Handshake) LowOrder() bool { return h.lowOrder }

// Peer returns the caller's handle for the peer.
func (h *Handshake) Peer() PeerID { return h.peer }

// State returns the current state.
func (h *Handshake) State() HandshakeState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// SetPresharedKey replaces the pre-shared key for the next handshakes.
func (h *Handshake) SetPresharedKey(psk PresharedKey) {
	h.mu.Lock()
	h.psk = psk
	h.mu.Unlock()
}

// PresharedKey returns the pre-shared key (zero when none), for status
// reports such as `wg show`.
func (h *Handshake) PresharedKey() PresharedKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.psk
}

// Clear abandons any handshake in progress: it frees its index in t and
// erases its secrets. The replay and flood history is kept.
func (h *Handshake) Clear(t *IndexTable) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLocked(t)
}

func (h *Handshake) clearLocked(t *IndexTable) {
	if h.localIndex != 0 {
		t.Delete(h.localIndex)
		h.localIndex = 0
	}
	h.eraseLocked()
}

// eraseLocked zeroes the secrets of the handshake in progress and lets go
// of them.
func (h *Handshake) eraseLocked() {
	if r := h.run; r != nil {
		setZero(r.hash[:])
		setZero(r.chainKey[:])
		setZero(r.localEphemeral[:])
		setZero(r.remoteEphemeral[:])
		h.run = nil
	}
	h.state = HandshakeZeroed
}

// SetLocal moves the handshake to another local identity (nil: none)
// after the private key changed. It forgets the static-static DH (the
// next handshake computes it for the new key) and abandons any handshake
// in progress, freeing its index in t: both derive from the old key, and
// a response to an initiation made with it could only fail. The replay
// and flood history and the peer's cookie stay: they are the peer's, not
// our key's. It does no Curve25519 work.
func (h *Handshake) SetLocal(local *Static, t *IndexTable) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLocked(t)
	setZero(h.ss[:])
	h.local, h.ssReady = local, false
}

// staticSecretLocked returns DH(our static, peer's static) for local
// (not nil), computing it on first use.
func (h *Handshake) staticSecretLocked() (*[KeySize]byte, error) {
	if !h.ssReady {
		ss, err := h.local.dh(&h.local.private, &h.remote)
		if err != nil {
			return nil, err
		}
		h.ss, h.ssReady = ss, true
	}
	return &h.ss, nil
}

// mixKey sets ck = KDF1(ck, data).
func mixKey(ck *[hashSize]byte, data []byte) { kdf1(ck, ck[:], data) }

// seal encrypts plain under key with the zero nonce and the hash as
// additional data, into dst.
func seal(dst []byte, key *[hashSize]byte, plain []byte, hash *[hashSize]byte) {
	aead, _ := chacha20poly1305.New(key[:]) // key size is fixed
	aead.Seal(dst[:0], zeroNonce[:], plain, hash[:])
}

// open is seal's inverse; it returns ErrHandshakeAuth on failure.
func open(dst []byte, key *[hashSize]byte, ct []byte, hash *[hashSize]byte) error {
	aead, _ := chacha20poly1305.New(key[:])
	if _, err := aead.Open(dst[:0], zeroNonce[:], ct, hash[:]); err != nil {
		return ErrHandshakeAuth
	}
	return nil
}

// CreateInitiation starts a handshake as initiator and fills msg with the
// first message, MAC1 and (if we hold a fresh cookie from the peer) MAC2
// included. It frees the index of a handshake we started before and
// allocates a new one in t. now is wall-clock time: it becomes the TAI64N
// timestamp the peer uses against replays, so it must grow across
// restarts, and it dates the cookie.
func (h *Handshake) CreateInitiation(now time.Time, t *IndexTable, msg *wire.Initiation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLocked(t)
	if h.local == nil {
		return ErrNoPrivateKey
	}
	if h.lowOrder {
		// Refused before any work: the message could be made, but the
		// peer's key makes its proof of our identity public.
		return ErrLowOrderPoint
	}

	eph, err := GeneratePrivateKey()
	if err != nil {
		return err
	}
	run := &handshakeRun{localEphemeral: eph, hash: mixHash(&initialHash, h.remote[:]), chainKey: initialChainKey}
	h.run = run
	*msg = wire.Initiation{Ephemeral: eph.Public()}
	mixKey(&run.chainKey, msg.Ephemeral[:])
	run.hash = mixHash(&run.hash, msg.Ephemeral[:])

	// The static key, encrypted under DH(e, S_r).
	ss, err := h.local.dh(&run.localEphemeral, &h.remote)
	if err != nil {
		h.eraseLocked()
		return err
	}
	var key [hashSize]byte
	kdf2(&run.chainKey, &key, run.chainKey[:], ss[:])
	setZero(ss[:])
	seal(msg.Static[:], &key, h.local.public[:], &run.hash)
	run.hash = mixHash(&run.hash, msg.Static[:])

	// The timestamp, encrypted under DH(S_i, S_r), proves who we are.
	sss, err := h.staticSecretLocked()
	if err != nil {
		h.eraseLocked()
		return err
	}
	kdf2(&run.chainKey, &key, run.chainKey[:], sss[:])
	ts := Stamp(now)
	seal(msg.Timestamp[:], &key, ts[:], &run.hash)
	setZero(key[:])
	run.hash = mixHash(&run.hash, msg.Timestamp[:])

	h.localIndex = t.NewHandshakeIndex(h)
	msg.Sender = h.localIndex
	h.state = HandshakeInitiationCreated

	var b [wire.InitiationSize]byte
	msg.Marshal(&b)
	h.cookies.AddMACs(b[:], now)
	copy(msg.MAC1[:], b[wire.InitiationMAC1Offset:])
	copy(msg.MAC2[:], b[wire.InitiationMAC2Offset:])
	return nil
}

// ConsumeResponse completes the handshake we initiated with the response
// b (any bytes are safe), and returns the peer's handshake and the new
// session, initiator side. The index in t now names the keypair. It checks
// MAC1 before any Curve25519 work; MAC2 and load are the CookieChecker's
// business (see Admit).
func (s *Static) ConsumeResponse(b []byte, now time.Time, t *IndexTable) (*Handshake, *Keypair, error) {
	var msg wire.Response
	if err := msg.Unmarshal(b); err != nil {
		return nil, nil, err
	}
	if !checkMAC1(&s.mac1Key, b) {
		return nil, nil, ErrMAC1
	}
	e, ok := t.Lookup(msg.Receiver)
	if !ok || e.Keypair != nil || e.Handshake == nil {
		return nil, nil, ErrUnknownIndex
	}
	h := e.Handshake
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.local != s {
		return nil, nil, ErrUnknownIndex // made with another key of ours
	}
	if h.state != HandshakeInitiationCreated || h.localIndex != msg.Receiver {
		return nil, nil, ErrHandshakeState
	}

	// Work on copies, so that a forged response leaves the handshake
	// waiting for the real one.
	hash, ck := mixHash(&h.run.hash, msg.Ephemeral[:]), h.run.chainKey
	defer setZero(ck[:])
	mixKey(&ck, msg.Ephemeral[:])
	ss, err := s.dh(&h.run.localEphemeral, (*PublicKey)(&msg.Ephemeral))
	if err != nil {
		return nil, nil, err
	}
	mixKey(&ck, ss[:])
	if ss, err = s.dh(&s.private, (*PublicKey)(&msg.Ephemeral)); err != nil {
		return nil, nil, err
	}
	mixKey(&ck, ss[:])
	setZero(ss[:])

	var tau, key [hashSize]byte
	kdf3(&ck, &tau, &key, ck[:], h.psk[:])
	hash = mixHash(&hash, tau[:])
	err = open(nil, &key, msg.Empty[:], &hash)
	setZero(key[:])
	if err != nil {
		return nil, nil, err
	}
	h.run.chainKey = ck
	h.remoteIndex = msg.Sender
	kp, err := h.deriveLocked(now, t, true)
	return h, kp, err
}

// deriveLocked turns the completed handshake into a keypair, moves the
// handshake's index in t over to it, and erases the handshake secrets.
func (h *Handshake) deriveLocked(now time.Time, t *IndexTable, initiator bool) (*Keypair, error) {
	var k1, k2 [hashSize]byte
	kdf2(&k1, &k2, h.run.chainKey[:], nil)
	send, recv := &k1, &k2
	if !initiator {
		send, recv = recv, send
	}
	kp := NewKeypair(send, recv, h.localIndex, h.remoteIndex, initiator, now)
	setZero(k1[:])
	setZero(k2[:])
	swapped := t.SwapKeypair(h.localIndex, kp)
	h.localIndex = 0 // it belongs to the keypair now
	h.eraseLocked()
	if !swapped {
		return nil, ErrUnknownIndex
	}
	return kp, nil
}
