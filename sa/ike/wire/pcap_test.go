package wire

import (
	"encoding/binary"
	"fmt"
	"os"
)

// readPcapUDP returns the UDP payloads of a classic little-endian pcap file
// of Ethernet frames carrying IPv4/UDP, with the non-ESP marker of port 4500
// (RFC 3948) removed.
func readPcapUDP(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if len(b) < 24 || le.Uint32(b) != 0xa1b2c3d4 || le.Uint32(b[20:]) != 1 {
		return nil, fmt.Errorf("%s: not a little-endian Ethernet pcap", path)
	}
	b = b[24:]
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 16 {
			return nil, fmt.Errorf("%s: truncated record header", path)
		}
		n := int(le.Uint32(b[8:]))
		if len(b) < 16+n {
			return nil, fmt.Errorf("%s: truncated record", path)
		}
		f := b[16 : 16+n]
		b = b[16+n:]
		if len(f) < 14+20+8 || f[12] != 0x08 || f[13] != 0 {
			return nil, fmt.Errorf("%s: not IPv4 over Ethernet", path)
		}
		ip := f[14:]
		ihl := int(ip[0]&0xf) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			return nil, fmt.Errorf("%s: not UDP", path)
		}
		udp := ip[ihl:]
		dport := binary.BigEndian.Uint16(udp[2:])
		payload := udp[8:binary.BigEndian.Uint16(udp[4:])]
		if dport == 4500 {
			if len(payload) < 4 || binary.BigEndian.Uint32(payload) != 0 {
				return nil, fmt.Errorf("%s: ESP on port 4500, not IKE", path)
			}
			payload = payload[4:]
		}
		out = append(out, payload)
	}
	return out, nil
}
