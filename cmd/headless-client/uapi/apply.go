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
// First the whole request is checked against the device as it will be
// (every peer it creates must have a usable public key, and a device
// that is a MarkChecker must accept a new fwmark), then the socket
// changes, the only step that can fail on the device's side. Only after
// both succeed does anything else change, and nothing after can fail.
func Apply(dev Device, req *SetRequest) error {
	steps, err := plan(dev, req)
	if err != nil {
		return err
	}
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
	return run(dev, steps)
}

// MarkChecker is an optional capability of a Device whose routing
// depends on its sockets' firewall mark (a full tunnel's policy rules):
// CheckFwMark refuses a mark it cannot carry, and Apply answers the set
// with EINVAL, changing nothing.
type MarkChecker interface {
	CheckFwMark(mark uint32) error
}

// step is one peer change Apply makes, decided and checked by plan.
type step struct {
	remove  bool                // remove the peer
	add     *stages.PeerConfig  // create the peer (with its settings)
	updates []stages.PeerUpdate // then change it, in order
	key     noise.PublicKey
}

// plan turns the peer part of req into steps against dev as it will be
// after req's device lines, and checks them; it changes nothing.
func plan(dev Device, req *SetRequest) ([]step, error) {
	// Which peers exist as the request goes, and which key is ours.
	exists := map[noise.PublicKey]bool{}
	if !req.ReplacePeers {
		for _, p := range dev.Peers() {
			exists[p.PublicKey] = true
		}
	}
	self, haveKey := dev.PrivateKey(), !dev.PrivateKey().IsZero()
	if req.PrivateKey != nil {
		self, haveKey = *req.PrivateKey, !req.PrivateKey.IsZero()
	}
	var selfPub noise.PublicKey
	if haveKey {
		selfPub = self.Public()
		delete(exists, selfPub) // SetPrivateKey removes such a peer
	}
	var steps []step
	if req.ReplacePeers {
		for _, p := range dev.Peers() {
			steps = append(steps, step{remove: true, key: p.PublicKey})
		}
	}
	for i := range req.Peers {
		pc := &req.Peers[i]
		switch {
		case haveKey && pc.PublicKey == selfPub:
			// wireguard-go ignores a peer with our own key.
		case pc.Remove:
			if exists[pc.PublicKey] {
				steps = append(steps, step{remove: true, key: pc.PublicKey})
			}
			delete(exists, pc.PublicKey)
		case !exists[pc.PublicKey] && pc.UpdateOnly:
		default:
			s := step{key: pc.PublicKey, updates: allowedIPUpdates(pc.AllowedIPs)}
			if !exists[pc.PublicKey] {
				// A low-order key is taken, as the kernel takes it: the
				// tunnel logs it and never completes a handshake with it.
				s.add = &stages.PeerConfig{PublicKey: pc.PublicKey}
				exists[pc.PublicKey] = true
			}
			if len(s.updates) == 0 {
				s.updates = []stages.PeerUpdate{{}}
			}
			u := &s.updates[0]
			u.PresharedKey, u.Endpoint, u.PersistentKeepalive = pc.PresharedKey, pc.Endpoint, pc.PersistentKeepalive
			steps = append(steps, s)
		}
	}
	return steps, nil
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

// run carries out checked steps. Nothing in them can fail on a device
// that behaves as plan assumed; an error here is a bug, reported as such.
func run(dev Device, steps []step) error {
	for _, s := range steps {
		if s.remove {
			dev.RemovePeer(s.key)
			continue
		}
		if s.add != nil {
			if err := dev.AddPeer(*s.add); err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
		for _, u := range s.updates {
			if err := dev.UpdatePeer(s.key, u); err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
	}
	return nil
}
