package lab

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/vifsec/vifsec/vif"
)

// ReadPcap returns the frames of a classic pcap file (as tcpdump -w
// writes them, either byte order, microsecond or nanosecond).
func ReadPcap(file string) ([][]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: too short for a pcap header", file)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: not a pcap file", file)
	}
	var frames [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			return nil, fmt.Errorf("%s: truncated record", file)
		}
		frames = append(frames, b[off:off+n])
		off += n
	}
	return frames, nil
}

// Inject sends raw frames onto gw's uplink, as if another host on the
// wire sent them toward the other gateway.
func Inject(gw *Gateway, frames [][]byte) error {
	p, err := vif.OpenPacket(gw.Uplink, gw.NS)
	if err != nil {
		return err
	}
	defer p.Close()
	n, err := p.WriteBatch(frames)
	if err != nil {
		return err
	}
	if n != len(frames) {
		return fmt.Errorf("injected %d of %d frames", n, len(frames))
	}
	return nil
}
