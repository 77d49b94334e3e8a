package lab

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/vifsec/vifsec/vif"
)

// ReadPcap returns the frames of a classic pcap file (as tcpdump -w
// writes them, either byte order, microsecond or nanosecond).
func ReadPcap(file string) ([][]byte, error) {
	_, recs, err := ReadPcapRecords(file)
	frames := make([][]byte, len(recs))
	for i, r := range recs {
		frames[i] = r.Data
	}
	return frames, err
}

// PcapRecord is one packet of a capture.
type PcapRecord struct {
	Time time.Time
	Data []byte
}

// Link types of pcap files (www.tcpdump.org/linktypes.html) that lab
// captures have.
const (
	LinkEthernet = 1   // a veth
	LinkRaw      = 101 // a TUN device: IP, no link header
)

// ReadPcapRecords returns the link type and the packets of a classic pcap
// file, with their capture times.
func ReadPcapRecords(file string) (uint32, []PcapRecord, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 24 {
		return 0, nil, fmt.Errorf("%s: too short for a pcap header", file)
	}
	var bo binary.ByteOrder
	nano := false
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nano = binary.BigEndian, true
	default:
		return 0, nil, fmt.Errorf("%s: not a pcap file", file)
	}
	link := bo.Uint32(b[20:24])
	var recs []PcapRecord
	for off := 24; off+16 <= len(b); {
		sec, frac := int64(bo.Uint32(b[off:])), int64(bo.Uint32(b[off+4:]))
		if !nano {
			frac *= 1000
		}
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			return link, recs, fmt.Errorf("%s: truncated record", file)
		}
		recs = append(recs, PcapRecord{Time: time.Unix(sec, frac), Data: b[off : off+n]})
		off += n
	}
	return link, recs, nil
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
