//go:build !linux

package tunio

import "net/netip"

// listenUDP is not implemented outside Linux: the batch I/O relies on
// recvmmsg/sendmmsg.
func listenUDP(netip.AddrPort, UDPOptions) (UDPConn, error) {
	return nil, ErrUnsupported
}
