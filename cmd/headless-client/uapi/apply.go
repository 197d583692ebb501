package uapi

import (
	"errors"
	"fmt"

	"pipeguard/noise"
	"pipeguard/stages"
)

// Apply carries out a set request on dev, all or nothing, with
// wireguard-go's semantics (device/uapi.go, line by line):
//
//   - private_key sets, changes or (all zeros) removes the key; on a
//     change the tunnel drops what derived from the old one and removes
//     a peer with the new public key;
//   - listen_port moves the socket (0: a free port; the port it has
//     keeps it) and fwmark marks it (0: no mark); a taken port or a
//     refused mark is EADDRINUSE, as in wireguard-go;
//   - replace_peers removes every peer first;
//   - then each peer block in order: a peer with our own public key is
//     ignored; remove removes it; update_only leaves an unknown peer
//     alone; otherwise a new peer is created and preshared_key,
//     endpoint, persistent_keepalive_interval and the allowed-IP lines
//     apply, the latter in request order.
//
// A peer public key that is a low-order point is taken, as the kernel
// takes it: the tunnel logs it and never completes a handshake with it.
//
// First a device that is a MarkChecker must accept a new fwmark, then the
// socket changes, the only step that can fail on the device's side. Only after both succeed does anything else change.
// The peer blocks then apply as one Batch: another `wg` reading
// meanwhile sees the peers as they were before the request or after it,
// and the work is linear in the request's length, whatever the number
// of peers.
func Apply(dev Device, req *SetRequest) error {
	newMark := req.FwMark != nil && *req.FwMark != dev.FwMark()
	if mc, ok := dev.(MarkChecker); ok && newMark {
		if err := mc.CheckFwMark(*req.FwMark); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if req.ListenPort != nil || newMark {
		port, mark := dev.LocalAddr().Port(), dev.FwMark()
		if req.ListenPort != nil {
			port = *req.ListenPort
		}
		if req.FwMark != nil {
			mark = *req.FwMark
		}
		if err := dev.Rebind(port, mark); err != nil {
			if errors.Is(err, stages.ErrUnsupported) {
				return fmt.Errorf("%w: %v", ErrUnsupported, err)
			}
			return fmt.Errorf("%w: %v", ErrSocket, err)
		}
	}
	if req.PrivateKey != nil {
		if err := dev.SetPrivateKey(*req.PrivateKey); err != nil {
			return fmt.Errorf("%w: private key: %v", ErrInvalid, err)
		}
	}
	if !req.ReplacePeers && len(req.Peers) == 0 {
		return nil
	}
	var selfPub noise.PublicKey
	self := dev.PrivateKey()
	haveKey := !self.IsZero()
	if haveKey {
		selfPub = self.Public()
	}
	err := dev.Configure(func(b *stages.Batch) error {
		if req.ReplacePeers {
			var all []noise.PublicKey
			for pk := range b.PublicKeys() {
				all = append(all, pk)
			}
			for _, pk := range all {
				b.RemovePeer(pk)
			}
		}
		for i := range req.Peers {
			if err := applyPeer(b, &req.Peers[i], haveKey && req.Peers[i].PublicKey == selfPub); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// check ruled out every error a Batch returns for a request;
		// this is a bug, reported as such.
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// MarkChecker is an optional capability of a Device whose routing
// depends on its sockets' firewall mark (a full tunnel's policy rules):
// CheckFwMark refuses a mark it cannot carry, and Apply answers the set
// with EINVAL, changing nothing.
type MarkChecker interface {
	CheckFwMark(mark uint32) error
}

// applyPeer carries out one peer block in b. self is true for a block
// that names our own public key, which wireguard-go ignores.
func applyPeer(b *stages.Batch, pc *PeerChange, self bool) error {
	switch {
	case self:
		return nil
	case pc.Remove:
		b.RemovePeer(pc.PublicKey)
		return nil
	case pc.UpdateOnly && !b.Has(pc.PublicKey):
		return nil
	}
	if !b.Has(pc.PublicKey) {
		if err := b.AddPeer(stages.PeerConfig{PublicKey: pc.PublicKey}); err != nil {
			return err
		}
	}
	updates := allowedIPUpdates(pc.AllowedIPs)
	if len(updates) == 0 {
		updates = []stages.PeerUpdate{{}}
	}
	u := &updates[0]
	u.PresharedKey, u.Endpoint, u.PersistentKeepalive = pc.PresharedKey, pc.Endpoint, pc.PersistentKeepalive
	for _, u := range updates {
		if err := b.UpdatePeer(pc.PublicKey, u); err != nil {
			return err
		}
	}
	return nil
}

// allowedIPUpdates turns allowed-IP lines into updates that, applied one
// after another, have the effect of the lines in order. One PeerUpdate
// applies a replace, then removals, then additions; a line that would
// come earlier in that order than the line before it starts a new one.
func allowedIPUpdates(ops []AllowedIPOp) []stages.PeerUpdate {
	var out []stages.PeerUpdate
	var cur *stages.PeerUpdate
	for _, op := range ops {
		rank := 2 // an addition
		switch {
		case op.ReplaceAll:
			rank = 0
		case op.Remove:
			rank = 1
		}
		if cur == nil || rank < updateRank(cur) {
			out = append(out, stages.PeerUpdate{})
			cur = &out[len(out)-1]
		}
		switch rank {
		case 0:
			cur.ReplaceAllowedIPs = true
		case 1:
			cur.RemoveAllowedIPs = append(cur.RemoveAllowedIPs, op.Prefix)
		default:
			cur.AddAllowedIPs = append(cur.AddAllowedIPs, op.Prefix)
		}
	}
	return out
}

// updateRank is the latest kind of allowed-IP change u holds: 2 if it
// adds, 1 if it removes, 0 if it only replaces (or holds nothing).
func updateRank(u *stages.PeerUpdate) int {
	switch {
	case len(u.AddAllowedIPs) > 0:
		return 2
	case len(u.RemoveAllowedIPs) > 0:
		return 1
	}
	return 0
}
