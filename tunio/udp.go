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

	// ReceiveBuffer and SendBuffer are the socket buffer sizes asked of
	// the kernel in bytes (which doubles them for its bookkeeping);
	// defaults DefaultReceiveBuffer and DefaultSendBuffer.
	ReceiveBuffer, SendBuffer int

	// Mark is the firewall mark (SO_MARK) of every packet sent, set
	// before the socket binds; 0: none. Setting one needs CAP_NET_ADMIN.
	// The socket implements Marker to change it later.
	Mark uint32
}

// Default socket buffer sizes, asked of the kernel (which doubles them).
//
// The receive buffer holds what arrives while the tunnel's reader is off
// the CPU; the tunnel drains it into its own managed queue as fast as it
// fills, and counts a datagram's wait in it (Datagram.Stamp), so a large
// one costs no latency, and one too small drops at its tail before the
// tunnel's queue manager sees anything. Measured in the netns lab with
// four TCP streams through two ends on a shared 2-vCPU machine (load
// average 6 to 9, the worst case for a reader's time off the CPU): the
// receiving socket held at most 1.4 to 2.9 MB, 0.1 to 0.3 MB on average;
// asking 1 MiB dropped 330 to 390 datagrams in 8 s, 2 MiB 13, 4 MiB and
// 8 MiB none. 4 MiB leaves room over the worst seen. (Before the
// readers drained the socket eagerly, 4 MiB was too little: the reader
// sat in TUN writes, and TCP retransmitted thousands of segments.)
//
// The send buffer bounds the datagrams the kernel holds between a send
// and the wire: on a path slower than the tunnel, what does not fit
// makes the send wait, and the backlog stays in the tunnel's managed
// queue, flow-fair, rather than in a device queue that sees one flow.
// See DefaultSendBuffer.
const DefaultReceiveBuffer = 4 << 20

// DefaultSendBuffer: see DefaultReceiveBuffer. In the netns lab 256 KiB,
// 1 MiB and 8 MiB moved the same bytes (a veth frees a datagram's buffer
// at once, so the lab cannot fill it); 1 MiB is some 1.6 ms at 10 Gbit/s
// with the kernel's doubling, room for a few segmentation-offloaded
// batches in flight on a real device.
const DefaultSendBuffer = 1 << 20

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
	if opts.ReceiveBuffer <= 0 {
		opts.ReceiveBuffer = DefaultReceiveBuffer
	}
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = DefaultSendBuffer
	}
	return listenUDP(addr, opts)
}
