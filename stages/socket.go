package stages

import (
	"errors"
	"fmt"

	"pipeguard/tunio"
)

// The tunnel's UDP socket as `wg set` changes it: its port and its
// firewall mark. Both need a socket that can make the change: a
// tunio.RebindConn (tunio.ListenRebindable) does both, a plain socket
// from tunio.ListenUDP only the mark; the stages never notice either.

// ErrUnsupported is returned for a change the tunnel's UDP socket cannot
// make (one that is not a tunio.Rebinder cannot change its port).
var ErrUnsupported = errors.New("stages: the tunnel's UDP socket cannot make this change")

// FwMark returns the firewall mark (SO_MARK) on the tunnel's UDP packets,
// 0 for none.
func (t *Tunnel) FwMark() uint32 {
	if m, ok := t.udp.(tunio.Marker); ok {
		return m.Mark()
	}
	return 0
}

// SetFwMark sets the firewall mark (SO_MARK) on the tunnel's UDP packets;
// 0 removes it. Policy routing tells the tunnel's own packets apart by
// it, so that a full tunnel does not route them into itself. It needs
// CAP_NET_ADMIN; on error the mark is unchanged.
func (t *Tunnel) SetFwMark(mark uint32) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	return t.setFwMarkLocked(mark)
}

func (t *Tunnel) setFwMarkLocked(mark uint32) error {
	m, ok := t.udp.(tunio.Marker)
	if !ok {
		if mark == 0 {
			return nil
		}
		return fmt.Errorf("%w: fwmark", ErrUnsupported)
	}
	if err := m.SetMark(mark); err != nil {
		return fmt.Errorf("stages: fwmark %d: %w", mark, err)
	}
	return nil
}

// SetListenPort moves the tunnel to UDP port (0: a free one); see Rebind.
func (t *Tunnel) SetListenPort(port uint16) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	return t.rebindLocked(port, t.FwMark())
}

// Rebind moves the tunnel's UDP socket to port (0: a free one the kernel
// picks) with the firewall mark mark, in one step: on error (the port is
// taken: an error wrapping syscall.EADDRINUSE) nothing changed and the
// old socket goes on working. The port the socket has already keeps the
// socket and changes only the mark. The data path carries on over the
// new socket (see tunio.RebindConn); peers learn the new port from the
// next packet they receive, as WireGuard peers roam.
func (t *Tunnel) Rebind(port uint16, mark uint32) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	return t.rebindLocked(port, mark)
}

func (t *Tunnel) rebindLocked(port uint16, mark uint32) error {
	r, ok := t.udp.(tunio.Rebinder)
	if !ok {
		if port == t.udp.LocalAddr().Port() && port != 0 {
			return t.setFwMarkLocked(mark)
		}
		return fmt.Errorf("%w: listen port", ErrUnsupported)
	}
	before := t.udp.LocalAddr()
	if err := r.Rebind(port, mark); err != nil {
		return fmt.Errorf("stages: listen port %d: %w", port, err)
	}
	if now := t.udp.LocalAddr(); now != before {
		t.log.Info("listening on a new UDP port", "listen", now, "was", before)
	}
	return nil
}
