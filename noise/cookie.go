package noise

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"pipeguard/wire"
)

// Errors of the MAC and cookie layer, WireGuard's defence against
// handshake floods.
var (
	// ErrMAC1 means the message's MAC1 is wrong: it was not made by anyone
	// who knows our public key. Drop it; no Curve25519 work was done.
	ErrMAC1 = errors.New("noise: invalid MAC1")
	// ErrCookieRequired means we are under load and the message has no
	// valid MAC2: send the cookie reply that came with the error, and do
	// nothing else with the message.
	ErrCookieRequired = errors.New("noise: under load and MAC2 invalid; answer with a cookie reply")
	// ErrCookieReply means a cookie reply did not decrypt: forged, or not
	// an answer to the last message we sent.
	ErrCookieReply = errors.New("noise: cookie reply failed authentication")
)

// macOffsets returns where MAC1 and MAC2 start in a handshake message:
// they are its last 32 bytes. ok is false for a message too short to hold
// them.
func macOffsets(msg []byte) (mac1, mac2 int, ok bool) {
	mac2 = len(msg) - wire.MACSize
	mac1 = mac2 - wire.MACSize
	return mac1, mac2, mac1 >= 0
}

// CookieChecker is the responder's half of the MAC scheme: it checks MAC1
// and MAC2 of handshake messages sent to us and makes cookie replies. The
// cookie is a MAC of the sender's address under a secret that changes
// every CookieRefreshTime, so a cookie proves the sender can receive at
// that address, and stops working two minutes later.
//
// Create one with NewCookieChecker; the zero value is not usable. It is
// safe for concurrent use; time comes from the now arguments.
type CookieChecker struct {
	mac1Key   [hashSize]byte // HASH("mac1----" || our public key); immutable
	cookieKey [hashSize]byte // HASH("cookie--" || our public key); immutable
	// replyAEAD is XChaCha20-Poly1305 under cookieKey, made once: under a
	// flood every reply would otherwise set up the cipher again.
	replyAEAD cipher.AEAD

	mu        sync.RWMutex   // guards secret and secretSet
	secret    [hashSize]byte // random, replaced every CookieRefreshTime
	secretSet time.Time      // when secret was made; zero: never
}

// NewCookieChecker returns a checker for messages sent to local.
func NewCookieChecker(local *Static) *CookieChecker {
	c := &CookieChecker{mac1Key: local.mac1Key, cookieKey: local.cookieKey}
	c.replyAEAD, _ = chacha20poly1305.NewX(c.cookieKey[:]) // key size is fixed
	return c
}

// CheckMAC1 reports whether the MAC1 of the handshake message msg is
// right. It costs one BLAKE2s over the message and no Curve25519 work, so
// it runs before anything else.
func (c *CookieChecker) CheckMAC1(msg []byte) bool {
	return checkMAC1(&c.mac1Key, msg)
}

func checkMAC1(key *[hashSize]byte, msg []byte) bool {
	m1, m2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	mac := mac16(key[:], msg[:m1])
	return hmac.Equal(mac[:], msg[m1:m2])
}

// CheckMAC2 reports whether msg carries a valid MAC2 for the source
// address src (the opaque bytes the transport uses to identify the sender,
// such as its IP and port). It is false while no secret younger than
// CookieRefreshTime exists, as then no valid cookie can exist either.
func (c *CookieChecker) CheckMAC2(msg, src []byte, now time.Time) bool {
	_, m2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	c.mu.RLock()
	if now.Sub(c.secretSet) > CookieRefreshTime {
		c.mu.RUnlock()
		return false
	}
	cookie := mac16(c.secret[:], src)
	c.mu.RUnlock()
	mac := mac16(cookie[:], msg[:m2])
	return hmac.Equal(mac[:], msg[m2:])
}

// CreateReply returns the cookie reply to msg, a handshake message from
// src whose sender index is receiver. The cookie is encrypted with
// XChaCha20-Poly1305 under HASH("cookie--" || our public key) and bound
// to msg's MAC1 as additional data, so only the sender of msg can use it.
// It renews the secret first if it is older than CookieRefreshTime.
//
// msg must be at least 32 bytes long (it has passed CheckMAC1); a shorter
// one is a caller bug and panics.
func (c *CookieChecker) CreateReply(msg []byte, receiver uint32, src []byte, now time.Time) wire.CookieReply {
	m1, m2, ok := macOffsets(msg)
	if !ok {
		panic("noise: CreateReply on a message without MACs")
	}
	c.mu.Lock()
	if now.Sub(c.secretSet) > CookieRefreshTime {
		rand.Read(c.secret[:]) // never fails since Go 1.24
		c.secretSet = now
	}
	cookie := mac16(c.secret[:], src)
	c.mu.Unlock()

	reply := wire.CookieReply{Receiver: receiver}
	rand.Read(reply.Nonce[:])
	c.replyAEAD.Seal(reply.Cookie[:0], reply.Nonce[:], cookie[:], msg[m1:m2])
	return reply
}

// Admit is the gate in front of the expensive handshake work, in the
// order wireguard-go applies it: msg (an initiation or a response, as
// received from src) must be well formed and have a valid MAC1, else it
// is dropped; when the caller decides it is underLoad, msg must also have
// a valid MAC2, else Admit fills reply with a cookie reply for the caller
// to send and returns ErrCookieRequired. A nil error means: go on and
// consume msg.
func (c *CookieChecker) Admit(msg, src []byte, underLoad bool, now time.Time, reply *wire.CookieReply) error {
	typ, err := wire.PeekType(msg)
	if err != nil {
		return err
	}
	switch {
	case typ == wire.TypeInitiation && len(msg) == wire.InitiationSize,
		typ == wire.TypeResponse && len(msg) == wire.ResponseSize:
	case typ == wire.TypeInitiation || typ == wire.TypeResponse:
		return wire.ErrSize
	default:
		return wire.ErrType
	}
	if !c.CheckMAC1(msg) {
		return ErrMAC1
	}
	if underLoad && !c.hasValidMAC2(msg, src, now) {
		// Both messages carry their sender index at bytes 4..8.
		*reply = c.CreateReply(msg, binary.LittleEndian.Uint32(msg[4:8]), src, now)
		return ErrCookieRequired
	}
	return nil
}

// hasValidMAC2 is CheckMAC2 for Admit, with a shortcut for the common
// case under a flood: a sender without a cookie leaves MAC2 zero, and a
// real MAC2 is zero with probability 2^-128, so a zero one is invalid
// without the two BLAKE2s computations of checking it.
func (c *CookieChecker) hasValidMAC2(msg, src []byte, now time.Time) bool {
	_, m2, _ := macOffsets(msg) // long enough: Admit checked the size
	var zero [wire.MACSize]byte
	if hmac.Equal(msg[m2:], zero[:]) {
		return false
	}
	return c.CheckMAC2(msg, src, now)
}

// CookieGenerator is the initiator's half: it adds MAC1 and MAC2 to the
// handshake messages we send to one peer, and keeps the cookie that peer
// last sent us. Every Handshake owns one.
//
// Until the first message it holds only the peer's key: the MAC keys
// and the cookie state are made then, so that a peer that never
// handshakes costs 24 bytes here.
//
// The zero value must be set up with Init before use. It is safe for
// concurrent use.
type CookieGenerator struct {
	remote *PublicKey // the peer's public key; set by Init

	mu sync.Mutex   // guards st
	st *cookieState // nil until the first message or cookie reply
}

// cookieState is a CookieGenerator's keys and cookie, once it has sent.
type cookieState struct {
	mac1Key     [hashSize]byte // HASH("mac1----" || peer's public key)
	cookieKey   [hashSize]byte // HASH("cookie--" || peer's public key)
	cookie      [wire.CookieSize]byte
	cookieSet   time.Time // when cookie arrived; zero: no cookie
	hasLastMAC1 bool
	lastMAC1    [wire.MACSize]byte // MAC1 of the last message sent: the AD of its cookie reply
}

// Init prepares g for messages to the peer whose public key is remote,
// and forgets any cookie.
func (g *CookieGenerator) Init(remote PublicKey) { g.init(&remote) }

// init is Init with the key where it already lives (a Handshake's own
// copy), so that g keeps a pointer to it instead of a copy.
func (g *CookieGenerator) init(remote *PublicKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remote, g.st = remote, nil
}

// stateLocked returns g's state, made on first use.
func (g *CookieGenerator) stateLocked() *cookieState {
	if g.st == nil {
		g.st = &cookieState{mac1Key: labelledHash(labelMAC1, g.remote), cookieKey: labelledHash(labelCookie, g.remote)}
	}
	return g.st
}

// ConsumeReply decrypts a cookie reply from the peer and keeps the cookie
// for the next messages. It fails with ErrCookieReply unless the reply
// answers the last message g added MACs to.
func (g *CookieGenerator) ConsumeReply(r *wire.CookieReply, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.st
	if st == nil || !st.hasLastMAC1 {
		return ErrCookieReply
	}
	var cookie [wire.CookieSize]byte
	aead, _ := chacha20poly1305.NewX(st.cookieKey[:])
	if _, err := aead.Open(cookie[:0], r.Nonce[:], r.Cookie[:], st.lastMAC1[:]); err != nil {
		return ErrCookieReply
	}
	st.cookie = cookie
	st.cookieSet = now
	return nil
}

// AddMACs writes MAC1 and MAC2 into the last 32 bytes of msg, a marshalled
// handshake message. MAC2 is the cookie's MAC while the cookie is at most
// CookieRefreshTime old (wireguard-go's rule), zero otherwise.
func (g *CookieGenerator) AddMACs(msg []byte, now time.Time) {
	m1, m2, ok := macOffsets(msg)
	if !ok {
		panic("noise: AddMACs on a message without MACs")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stateLocked()
	mac1 := mac16(st.mac1Key[:], msg[:m1])
	copy(msg[m1:m2], mac1[:])
	st.lastMAC1 = mac1
	st.hasLastMAC1 = true
	if now.Sub(st.cookieSet) > CookieRefreshTime {
		clear(msg[m2:])
		return
	}
	mac2 := mac16(st.cookie[:], msg[:m2])
	copy(msg[m2:], mac2[:])
}

// ConsumeCookieReply parses the cookie reply b and hands it to the cookie
// generator of the peer whose index it names. It returns that peer's
// handshake, whose next messages will carry MAC2. Any bytes are safe.
func ConsumeCookieReply(b []byte, now time.Time, t *IndexTable) (*Handshake, error) {
	var r wire.CookieReply
	if err := r.Unmarshal(b); err != nil {
		return nil, err
	}
	e, ok := t.Lookup(r.Receiver)
	if !ok || e.Handshake == nil {
		return nil, ErrUnknownIndex
	}
	if err := e.Handshake.cookies.ConsumeReply(&r, now); err != nil {
		return nil, err
	}
	return e.Handshake, nil
}
