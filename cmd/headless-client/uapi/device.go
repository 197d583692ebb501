package uapi

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"

	"pipeguard/noise"
	"pipeguard/stages"
)

// Device is what the server needs of a tunnel; *stages.Tunnel has it all.
type Device interface {
	PrivateKey() noise.PrivateKey
	LocalAddr() netip.AddrPort
	FwMark() uint32
	Peers() []stages.PeerStatus
	Peer(noise.PublicKey) (stages.PeerStatus, bool)

	// SetPrivateKey sets, changes or (zero) removes the key; it must not
	// fail for any key (Apply relies on that).
	SetPrivateKey(noise.PrivateKey) error
	// Rebind moves the UDP socket to port (0: a free one) with firewall
	// mark mark; on error nothing changed.
	Rebind(port uint16, mark uint32) error
	AddPeer(stages.PeerConfig) error
	RemovePeer(noise.PublicKey) bool
	UpdatePeer(noise.PublicKey, stages.PeerUpdate) error
}

var _ Device = (*stages.Tunnel)(nil)

// AppendGet appends the answer to a get operation, without the final
// errno line, in wireguard-go's order: device keys, then each peer's.
func AppendGet(b []byte, dev Device) []byte {
	if k := dev.PrivateKey(); !k.IsZero() {
		b = appendKey(b, "private_key", k)
	}
	if port := dev.LocalAddr().Port(); port != 0 {
		b = fmt.Appendf(b, "listen_port=%d\n", port)
	}
	if mark := dev.FwMark(); mark != 0 {
		b = fmt.Appendf(b, "fwmark=%d\n", mark)
	}
	for _, p := range dev.Peers() {
		b = appendKey(b, "public_key", p.PublicKey)
		b = appendKey(b, "preshared_key", p.PresharedKey)
		b = append(b, "protocol_version=1\n"...)
		if p.Endpoint.IsValid() {
			b = fmt.Appendf(b, "endpoint=%s\n", p.Endpoint)
		}
		var sec, nsec int64
		if !p.LastHandshake.IsZero() {
			sec, nsec = p.LastHandshake.Unix(), int64(p.LastHandshake.Nanosecond())
		}
		b = fmt.Appendf(b, "last_handshake_time_sec=%d\nlast_handshake_time_nsec=%d\n", sec, nsec)
		b = fmt.Appendf(b, "tx_bytes=%d\nrx_bytes=%d\n", p.TxBytes, p.RxBytes)
		b = fmt.Appendf(b, "persistent_keepalive_interval=%d\n", int64(p.PersistentKeepalive.Seconds()))
		for _, pfx := range p.AllowedIPs {
			b = fmt.Appendf(b, "allowed_ip=%s\n", pfx)
		}
	}
	return b
}

func appendKey[K ~[32]byte](b []byte, name string, k K) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = hex.AppendEncode(b, k[:])
	return append(b, '\n')
}

// errnoLine is the status line that ends every answer.
func errnoLine(err error) []byte {
	var b bytes.Buffer
	b.WriteString("errno=")
	b.WriteString(strconv.FormatInt(Errno(err), 10))
	b.WriteString("\n\n")
	return b.Bytes()
}
