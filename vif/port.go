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

// ErrClosed is returned by a Port's methods after Close.
var ErrClosed = errors.New("vif: port closed")

// MaxBatch is the most frames one ReadBatch or WriteBatch moves.
const MaxBatch = 64
