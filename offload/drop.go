package offload

import "fmt"

// Drop is why an offload function refused a packet. Like sa.Drop it is a
// small enum that indexes a counter, never an error string built per
// packet. DropNone (the zero value) means the packet was not dropped.
type Drop uint8

const (
	DropNone Drop = iota
	// DropBadVnetHdr: the virtio_net_hdr is malformed (unknown flag or GSO
	// bits, zero gso_size) or contradicts its frame (checksum offsets out
	// of the frame or not at the L4 checksum, GSO type of another
	// protocol).
	DropBadVnetHdr
	// DropMalformed: truncated or inconsistent Ethernet, IP or L4 headers.
	DropMalformed
	// DropUnsupported: valid, but a form vifsec does not segment or build
	// (UFO, GSO_NONE given to Segment, IPv6 AH, jumbograms/BIG TCP, a
	// GSO SYN or RST).
	DropUnsupported
	// DropFragment: an IP fragment where a whole datagram is needed.
	DropFragment
	// DropTooBig: the packet cannot be made to fit: DF set, a USO
	// gso_size above the target segment size, or an MTU that leaves no
	// room for payload. The caller signals the path MTU instead.
	DropTooBig
	// DropTooManySegments: the result needs more buffers than the caller's
	// batch holds. Give a bigger batch; nothing was written.
	DropTooManySegments
	// DropNoRoom: an output buffer is shorter than offset plus the packet
	// (a sizing bug upstream).
	DropNoRoom
	NumDrops
)

var dropNames = [NumDrops]string{
	DropNone:            "none",
	DropBadVnetHdr:      "bad-vnet-hdr",
	DropMalformed:       "malformed",
	DropUnsupported:     "unsupported",
	DropFragment:        "fragment",
	DropTooBig:          "too-big",
	DropTooManySegments: "too-many-segments",
	DropNoRoom:          "no-room",
}

func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return fmt.Sprintf("Drop(%d)", uint8(d))
}
