package tunio

// TUNOptions tunes CreateTUNOptions. The zero value asks for the defaults.
type TUNOptions struct {
	// NoWriteCopy stops Write from copying packets into the device's own
	// large buffers before handing them to the kernel. The copy is what
	// lets the TUN's write-side GRO glue TCP segments (and UDP datagrams,
	// on kernels with USO) of one flow into one large write, since
	// coalescing appends to the first packet's buffer and the pipeline's
	// buffers are sized for one packet. Without the copy, packets go one
	// write each unless the caller's buffers have capacity to spare.
	NoWriteCopy bool
}

// groBufCap is the capacity of the device's write buffers: the kernel takes
// at most a 64 KiB packet per write, which bounds what GRO can glue.
const groBufCap = 65535

// virtioNetHdrLen is the header the Linux TUN puts before every packet when
// offloads are on (IFF_VNET_HDR); Write needs that much room before offset.
const virtioNetHdrLen = 10
