package vif

import "errors"

// Meta is what the kernel tells about a received frame besides its bytes.
type Meta struct {
	// VLAN is the 802.1Q VLAN ID the kernel took out of the frame into
	// packet metadata; valid when Tagged is true.
	VLAN   uint16
	Tagged bool
}

// Port moves batches of Ethernet frames on one interface.
//
// ReadBatch blocks until at least one frame arrives, then returns n ≥ 1
// frames: frame i is bufs[i][offset:offset+sizes[i]] and meta[i] describes
// it. Each buffer must have room for a full frame after offset; the offset
// leaves headroom for headers the caller adds in place. A frame longer
// than the room is dropped by the port and counted, never returned cut.
//
// WriteBatch sends frames[i] (whole Ethernet frames, the caller's slices)
// and returns how many were sent; it does not retain the slices.
//
// A Port is safe for one reader and one writer goroutine at the same time.
// Close unblocks both with ErrClosed.
type Port interface {
	ReadBatch(bufs [][]byte, sizes []int, meta []Meta, offset int) (n int, err error)
	WriteBatch(frames [][]byte) (n int, err error)
	Name() string
	Close() error
}

// Waiter is a Port that can wait for a frame without being given the
// buffers to read it into, so that a reader of an idle port holds none.
// WaitRead blocks until a frame is there to read (the next ReadBatch
// returns without waiting) or the port is closed (ErrClosed). It is
// called from the port's one reader goroutine.
type Waiter interface {
	WaitRead() error
}

// ErrClosed is returned by a Port's methods after Close.
var ErrClosed = errors.New("vif: port closed")

// MaxBatch is the most frames one ReadBatch or WriteBatch moves.
const MaxBatch = 64

// VnetHdrLen is the size of struct virtio_net_hdr
// (include/uapi/linux/virtio_net.h), which ports opened with virtio-net
// headers put in front of every frame.
const VnetHdrLen = 10

// PacketOptions tune an AF_PACKET port.
type PacketOptions struct {
	// VnetHdr turns on PACKET_VNET_HDR: every frame ReadBatch returns
	// starts with a 10-byte struct virtio_net_hdr (include/uapi/linux/
	// virtio_net.h) carrying the GSO and checksum-offload state, and every
	// frame given to WriteBatch must start with one. With it a guest's
	// TSO/GSO super-frames and partial checksums arrive described instead
	// of silently broken; without it they arrive as bare oversized frames.
	VnetHdr bool
	// Queues is how many sockets to open on the interface, joined in one
	// PACKET_FANOUT group (hash mode): the kernel spreads received frames
	// among them by flow hash — the 5-tuple, the SPI for ESP, addresses
	// and protocol alone for IP fragments — so one flow or SA always
	// reaches the same socket, in order. Each socket has its own receive
	// and send path (Multi). 0 or 1: one socket, no fanout.
	Queues int
	// Qdisc sends frames through the interface's queueing discipline
	// instead of past it (no PACKET_QDISC_BYPASS): the kernel then
	// segments in software a GSO super-frame the device cannot take whole
	// (a UDP GSO train toward a device without tx-udp-segmentation), where
	// a bypassing socket's frame is dropped; and tc egress sees the
	// frames. For the uplink only: a VIF's guard (InstallGuard) counts on
	// vifsec's own writes passing its egress filter unseen.
	Qdisc bool
}

// Multi is a Port made of several queues, each a Port with its own
// socket, among which the kernel spreads received frames by flow. Read
// each queue from its own goroutine; a frame may be written on any
// queue. ReadBatch and WriteBatch on the Multi itself use its first
// queue; Close closes every queue.
type Multi interface {
	Port
	Queues() []Port
}
