// Package flood measures what a handshake flood costs the data (cmd/bench
// --mode flood): one in-memory tunnel (package memrig) with one
// established peer carries bulk data both ways, alone and while the
// harness sends it handshake initiations from many source addresses, each
// with a valid MAC1 for the tunnel's public key (so each passes the cheap
// check and, unless the tunnel answers with a cookie, costs it a
// Curve25519 operation), at ten times the rate one core of this machine
// does X25519, measured in the same run. The attacker never completes the
// cookie exchange: its sources are spoofed, so MAC2 stays empty.
//
// The two phases alternate in short segments, so that the machine's other
// load falls on both. It reports the data's rate alone and flooded, the
// initiations received, dropped, worked on and answered, the cookie
// replies, and the tunnel's CPU by stage, from the stage labels of a
// profile (package cpuprof).
package flood
