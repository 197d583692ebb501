package uapi

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"iter"
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
	// AllPeers yields every peer from one snapshot of the configuration,
	// holding no lock (see stages.Tunnel.AllPeers).
	AllPeers() iter.Seq[stages.PeerStatus]

	// SetPrivateKey sets, changes or (zero) removes the key; it must not
	// fail for any key (Apply relies on that).
	SetPrivateKey(noise.PrivateKey) error
	// Rebind moves the UDP socket to port (0: a free one) with firewall
	// mark mark; on error nothing changed.
	Rebind(port uint16, mark uint32) error
	// Configure changes the peers as one batch (see
	// stages.Tunnel.Configure).
	Configure(func(*stages.Batch) error) error
}

var _ Device = (*stages.Tunnel)(nil)

// WriteGet writes the answer to a get operation, without the final errno
// line, in wireguard-go's order: device keys, then each peer's. It
// streams: each peer is written as it is read, so the answer for 100,000
// peers costs a buffer, not a copy of the answer in memory, and it takes
// no lock (the peers come from one snapshot, see Device.AllPeers).
func WriteGet(w *bufio.Writer, dev Device) error {
	var b []byte // one line or one peer at a time, reused
	if k := dev.PrivateKey(); !k.IsZero() {
		b = appendKey(b, "private_key", k)
	}
	if port := dev.LocalAddr().Port(); port != 0 {
		b = appendUint(b, "listen_port", uint64(port))
	}
	if mark := dev.FwMark(); mark != 0 {
		b = appendUint(b, "fwmark", uint64(mark))
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	for p := range dev.AllPeers() {
		b = appendPeer(b[:0], &p)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// AppendGet appends the answer to a get operation to b (see WriteGet).
func AppendGet(b []byte, dev Device) []byte {
	buf := bytes.NewBuffer(b)
	w := bufio.NewWriter(buf)
	WriteGet(w, dev) // writing to a bytes.Buffer cannot fail
	w.Flush()
	return buf.Bytes()
}

func appendPeer(b []byte, p *stages.PeerStatus) []byte {
	b = appendKey(b, "public_key", p.PublicKey)
	b = appendKey(b, "preshared_key", p.PresharedKey)
	b = append(b, "protocol_version=1\n"...)
	if p.Endpoint.IsValid() {
		b = append(b, "endpoint="...)
		b = p.Endpoint.AppendTo(b)
		b = append(b, '\n')
	}
	var sec, nsec int64
	if !p.LastHandshake.IsZero() {
		sec, nsec = p.LastHandshake.Unix(), int64(p.LastHandshake.Nanosecond())
	}
	b = appendUint(b, "last_handshake_time_sec", uint64(sec))
	b = appendUint(b, "last_handshake_time_nsec", uint64(nsec))
	b = appendUint(b, "tx_bytes", p.TxBytes)
	b = appendUint(b, "rx_bytes", p.RxBytes)
	b = appendUint(b, "persistent_keepalive_interval", uint64(p.PersistentKeepalive.Seconds()))
	for _, pfx := range p.AllowedIPs {
		b = append(b, "allowed_ip="...)
		b = pfx.AppendTo(b)
		b = append(b, '\n')
	}
	return b
}

func appendUint(b []byte, name string, v uint64) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '\n')
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
