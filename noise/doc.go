// Package noise implements everything of the WireGuard protocol that is not
// I/O: keys, the Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake, MAC1/MAC2
// and cookies, session keypairs with in-place transport sealing and opening,
// the replay window, the index table, the protocol's timer constants, and a
// per-peer state machine that decides, on a clock the caller supplies, what
// the peer must do next.
//
// It never touches sockets or devices: callers hand it bytes and the current
// time, and act on what it returns.
package noise
