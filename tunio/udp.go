package tunio

import "net/netip"

// UDPOptions tunes ListenUDPOptions. The zero value asks for the defaults:
// batches of DefaultBatchSize, with UDP GSO and GRO where the kernel offers
// them.
type UDPOptions struct {
	// BatchSize is the most datagrams one system call moves; default
	// DefaultBatchSize.
	BatchSize int

	// DisableGSO turns off UDP generic segmentation offload on send
	// (UDP_SEGMENT): each datagram is then its own message in sendmmsg.
	DisableGSO bool

	// DisableGRO turns off UDP generic receive offload (UDP_GRO): the
	// kernel then hands over datagrams one by one, straight into the
	// caller's buffers.
	DisableGRO bool

	// SocketBuffer is the receive and send buffer size asked of the kernel
	// in bytes; default DefaultSocketBuffer.
	SocketBuffer int

	// Mark is the firewall mark (SO_MARK) of every packet sent, set
	// before the socket binds; 0: none. Setting one needs CAP_NET_ADMIN.
	// The socket implements Marker to change it later.
	Mark uint32
}

// DefaultSocketBuffer is the default socket buffer size: a few milliseconds
// of a multi-gigabit stream, so a scheduling hiccup of the reading stage
// does not overflow it. (wireguard-go asks for 7 MiB.) It is a bound, not
// an allocation. 4 MiB was too little: with four TCP streams through two
// ends on a shared 2-vCPU machine, the receiving socket overflowed while
// its reader sat in a TUN write, and TCP retransmitted 5,000 to 17,000
// segments in 3 s; with 8 MiB, none.
const DefaultSocketBuffer = 8 << 20

// UDPOffloads is an optional capability of a UDPConn: which offloads it
// uses at the moment. GSO can switch itself off after the kernel refuses a
// segmented send.
type UDPOffloads interface {
	Offloads() (gso, gro bool)
}

// ListenUDP opens a UDP socket bound to addr with default options.
//
// An unspecified or invalid address (::, or the zero AddrPort) gives one
// dual-stack IPv6 socket that also serves IPv4 (IPV6_V6ONLY off); an IPv4
// address (plain or v4-mapped) gives an IPv4 socket; any other IPv6 address
// an IPv6-only socket. Port 0 picks a free port; LocalAddr tells which.
func ListenUDP(addr netip.AddrPort) (UDPConn, error) {
	return ListenUDPOptions(addr, UDPOptions{})
}

// ListenUDPOptions is ListenUDP with options.
func ListenUDPOptions(addr netip.AddrPort, opts UDPOptions) (UDPConn, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.SocketBuffer <= 0 {
		opts.SocketBuffer = DefaultSocketBuffer
	}
	return listenUDP(addr, opts)
}
