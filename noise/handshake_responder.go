package noise

import (
	"time"

	"pipeguard/wire"
)

// ConsumeInitiation is the responder's first step: it authenticates the
// initiation b (any bytes are safe), finds the peer by the static key it
// carries through lookup (which returns nil for an unknown key), and
// leaves that peer's Handshake ready for CreateResponse.
//
// The checks, cheapest first: strict parsing and MAC1 (ErrMAC1, before
// any Curve25519 work), then decryption of the static key and timestamp
// (ErrHandshakeAuth, ErrUnknownPeer; ErrLowOrderPoint for a peer whose
// key is a low-order point, see NewHandshake), then replay (ErrReplay: the
// timestamp must be newer than the last accepted from this peer) and
// flood protection (ErrFlood: at most one initiation per
// HandshakeInitiationRate per peer, measured on now). A rejected
// initiation leaves the peer's state untouched. MAC2 and load are checked
// before, by CookieChecker.Admit.
func (s *Static) ConsumeInitiation(b []byte, now time.Time, lookup func(PublicKey) *Handshake) (*Handshake, error) {
	var msg wire.Initiation
	if err := msg.Unmarshal(b); err != nil {
		return nil, err
	}
	if !checkMAC1(&s.mac1Key, b) {
		return nil, ErrMAC1
	}

	hash := mixHash(&s.hash0, msg.Ephemeral[:])
	ck := initialChainKey
	defer setZero(ck[:])
	mixKey(&ck, msg.Ephemeral[:])

	// The initiator's static key, under DH(S_r, E_i).
	ss, err := s.dh(&s.private, (*PublicKey)(&msg.Ephemeral))
	if err != nil {
		return nil, err
	}
	var key [hashSize]byte
	defer setZero(key[:])
	kdf2(&ck, &key, ck[:], ss[:])
	setZero(ss[:])
	var remote PublicKey
	if err := open(remote[:], &key, msg.Static[:], &hash); err != nil {
		return nil, err
	}
	hash = mixHash(&hash, msg.Static[:])

	h := lookup(remote)
	if h == nil || !h.remote.Equal(remote) {
		return nil, ErrUnknownPeer
	}
	// Locked from here: local and the precomputed DH change with our key.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.local != s {
		return nil, ErrUnknownPeer
	}
	if h.lowOrder {
		// The static-static DH is all zero: anyone can make the timestamp
		// below, so it would prove nothing. The kernel refuses the zero
		// DH here too (mix_precomputed_dh).
		return nil, ErrLowOrderPoint
	}

	// The timestamp, under DH(S_i, S_r), computed once per peer and key.
	sss, err := h.staticSecretLocked()
	if err != nil {
		return nil, err
	}
	kdf2(&ck, &key, ck[:], sss[:])
	var ts Timestamp
	if err := open(ts[:], &key, msg.Timestamp[:], &hash); err != nil {
		return nil, err
	}
	hash = mixHash(&hash, msg.Timestamp[:])

	if !ts.After(h.lastTimestamp) {
		return nil, ErrReplay
	}
	if now.Sub(h.lastInitiationAccept) <= HandshakeInitiationRate {
		return nil, ErrFlood
	}
	// Erase a handshake we may have started ourselves: the peer's wins,
	// as in wireguard-go. Its index stays until CreateResponse replaces it.
	h.eraseLocked()
	h.run = &handshakeRun{hash: hash, chainKey: ck, remoteEphemeral: msg.Ephemeral}
	h.remoteIndex = msg.Sender
	h.lastTimestamp = ts
	if now.After(h.lastInitiationAccept) {
		h.lastInitiationAccept = now
	}
	h.state = HandshakeInitiationConsumed
	return h, nil
}

// CreateResponse answers the initiation ConsumeInitiation accepted: it
// fills msg (MACs included) and returns the new session, responder side.
// Its index in t names the keypair from now on. A responder must not send
// data with the keypair before the initiator has used it (the initiator
// confirms the session by sending first).
func (h *Handshake) CreateResponse(now time.Time, t *IndexTable, msg *wire.Response) (*Keypair, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != HandshakeInitiationConsumed {
		return nil, ErrHandshakeState
	}
	if h.localIndex != 0 {
		t.Delete(h.localIndex) // of an initiation of ours the peer's replaced
	}
	h.localIndex = t.NewHandshakeIndex(h)

	eph, err := GeneratePrivateKey()
	if err != nil {
		h.clearLocked(t)
		return nil, err
	}
	run := h.run
	run.localEphemeral = eph
	*msg = wire.Response{Sender: h.localIndex, Receiver: h.remoteIndex, Ephemeral: eph.Public()}
	run.hash = mixHash(&run.hash, msg.Ephemeral[:])
	mixKey(&run.chainKey, msg.Ephemeral[:])

	ss, err := h.local.dh(&run.localEphemeral, &run.remoteEphemeral)
	if err != nil {
		h.clearLocked(t)
		return nil, err
	}
	mixKey(&run.chainKey, ss[:])
	if ss, err = h.local.dh(&run.localEphemeral, &h.remote); err != nil {
		h.clearLocked(t)
		return nil, err
	}
	mixKey(&run.chainKey, ss[:])
	setZero(ss[:])

	var tau, key [hashSize]byte
	kdf3(&run.chainKey, &tau, &key, run.chainKey[:], h.psk[:])
	run.hash = mixHash(&run.hash, tau[:])
	seal(msg.Empty[:], &key, nil, &run.hash)
	setZero(key[:])
	setZero(tau[:])
	run.hash = mixHash(&run.hash, msg.Empty[:])

	var b [wire.ResponseSize]byte
	msg.Marshal(&b)
	h.cookies.AddMACs(b[:], now)
	copy(msg.MAC1[:], b[wire.ResponseMAC1Offset:])
	copy(msg.MAC2[:], b[wire.ResponseMAC2Offset:])

	return h.deriveLocked(now, t, false)
}
