package gso_test

import (
	"fmt"
	"github.com/vifsec/vifsec/drop"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// The data path's use: a frame read from a packet socket with
// PACKET_VNET_HDR arrives as the 10-byte header followed by the frame
// (read it at offset Headroom-VnetHdrLen so the frame lands at Headroom).
// A GSO frame is cut into segments that fit the effective MTU, each
// written after the ESP headroom of its own buffer; a plain frame with a
// partial checksum only needs it finished.
func ExampleSegment() {
	const headroom, effectiveMTU = 128, 1400 // MTU after ESP and overlay overhead
	p := ot.Packet{Src: ot.V4A, Dst: ot.V4B, DF: true, Flags: ot.ACK | ot.PSH, Payload: make([]byte, 4000)}
	frame, h := ot.Super(p, 1448, true, false)
	buf := make([]byte, offload.VnetHdrLen+len(frame))
	h.Put(buf)
	copy(buf[offload.VnetHdrLen:], frame)

	// Per frame:
	h, d := offload.ParseVnetHdr(buf)
	if d != drop.None {
		fmt.Println("drop:", d) // count it against the VM
		return
	}
	frame = buf[offload.VnetHdrLen:]
	if h.GSO() == offload.GSONone {
		if h.NeedsCsum() {
			csum.Complete(frame, int(h.CsumStart), int(h.CsumOffset))
		}
		return // one frame: on to ESP
	}
	out := make([][]byte, 64) // the worker's preallocated batch
	for i := range out {
		out[i] = make([]byte, 2048)
	}
	sizes := make([]int, len(out))
	n, d := gso.Segment(frame, h, effectiveMTU, out, headroom, sizes)
	if d != drop.None {
		fmt.Println("drop:", d)
		return
	}
	for i := range n {
		seg := out[i][headroom : headroom+sizes[i]] // on to ESP, in place
		fmt.Println(len(seg))
	}
	// Output:
	// 1414
	// 1414
	// 1334
}
