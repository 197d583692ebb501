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
	Peers() []stages.PeerStatus
	Peer(noise.PublicKey) (stages.PeerStatus, bool)
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

// Apply carries out a set request on dev. Changes the tunnel cannot make
// while running (another private key, another listen port, a firewall
// mark) fail with ErrUnsupported before anything is changed; everything
// else applies peer by peer in request order, as wireguard-go does, and
// stops at the first failure.
func Apply(dev Device, req *SetRequest) error {
	if req.PrivateKey != nil && !req.PrivateKey.Equal(dev.PrivateKey()) {
		return fmt.Errorf("%w: the private key (restart with the new key in the config file)", ErrUnsupported)
	}
	if req.ListenPort != nil && *req.ListenPort != dev.LocalAddr().Port() {
		return fmt.Errorf("%w: the listen port (restart with ListenPort = %d in the config file)", ErrUnsupported, *req.ListenPort)
	}
	if req.FwMark != nil && *req.FwMark != 0 {
		return fmt.Errorf("%w: fwmark", ErrUnsupported)
	}
	if req.ReplacePeers {
		// As wireguard-go: every peer goes, sessions and all (wg
		// syncconf avoids this by sending only the differences).
		for _, p := range dev.Peers() {
			dev.RemovePeer(p.PublicKey)
		}
	}
	self := dev.PrivateKey().Public()
	for i := range req.Peers {
		pc := &req.Peers[i]
		if pc.PublicKey == self {
			continue // wireguard-go ignores a peer with our own key
		}
		if err := applyPeer(dev, pc); err != nil {
			return err
		}
	}
	return nil
}

func applyPeer(dev Device, pc *PeerChange) error {
	_, exists := dev.Peer(pc.PublicKey)
	switch {
	case pc.Remove:
		dev.RemovePeer(pc.PublicKey)
		return nil
	case !exists && pc.UpdateOnly:
		return nil
	case !exists:
		cfg := stages.PeerConfig{PublicKey: pc.PublicKey}
		if err := dev.AddPeer(cfg); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	err := dev.UpdatePeer(pc.PublicKey, stages.PeerUpdate{
		PresharedKey:        pc.PresharedKey,
		Endpoint:            pc.Endpoint,
		PersistentKeepalive: pc.PersistentKeepalive,
		ReplaceAllowedIPs:   pc.ReplaceAllowedIPs,
		AddAllowedIPs:       pc.AddAllowedIPs,
		RemoveAllowedIPs:    pc.RemoveAllowedIPs,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// errnoLine is the status line that ends every answer.
func errnoLine(err error) []byte {
	var b bytes.Buffer
	b.WriteString("errno=")
	b.WriteString(strconv.FormatInt(Errno(err), 10))
	b.WriteString("\n\n")
	return b.Bytes()
}
