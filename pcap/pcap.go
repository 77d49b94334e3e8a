package pcap

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// LinkType is the link-layer header type of every packet in a file
// (the tcpdump.org LINKTYPE_ registry).
type LinkType uint32

const (
	// LinkTypeEthernet is LINKTYPE_ETHERNET: packets start with an
	// Ethernet II header (with any 802.1Q tag inline).
	LinkTypeEthernet LinkType = 1
	// LinkTypeRaw is LINKTYPE_RAW: packets start with an IPv4 or IPv6
	// header, told apart by the version nibble.
	LinkTypeRaw LinkType = 101
)

func (l LinkType) String() string {
	switch l {
	case LinkTypeEthernet:
		return "ethernet"
	case LinkTypeRaw:
		return "raw"
	}
	return fmt.Sprintf("LinkType(%d)", uint32(l))
}

const (
	magicMicros  = 0xa1b2c3d4 // timestamps in microseconds
	versionMajor = 2
	versionMinor = 4
	// DefaultSnapLen is large enough for any IPv4/IPv6 packet.
	DefaultSnapLen = 262144
	fileHeaderLen  = 24
	recordHdrLen   = 16
)

// Writer writes one capture file. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	snapLen int
	hdr     [recordHdrLen]byte
}

// NewWriter writes the file header to w and returns a Writer for packets of
// link type lt. snapLen bounds the bytes stored per packet (longer packets
// are truncated, their original length recorded); 0 means DefaultSnapLen.
// The file is little-endian with microsecond timestamps, which every pcap
// reader accepts.
func NewWriter(w io.Writer, lt LinkType, snapLen int) (*Writer, error) {
	if snapLen == 0 {
		snapLen = DefaultSnapLen
	}
	if snapLen < 0 || snapLen > DefaultSnapLen {
		return nil, fmt.Errorf("pcap: snap length %d out of range; use 1-%d (0 for the default)", snapLen, DefaultSnapLen)
	}
	var h [fileHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:4], magicMicros)
	binary.LittleEndian.PutUint16(h[4:6], versionMajor)
	binary.LittleEndian.PutUint16(h[6:8], versionMinor)
	// h[8:16]: thiszone and sigfigs, always 0.
	binary.LittleEndian.PutUint32(h[16:20], uint32(snapLen))
	binary.LittleEndian.PutUint32(h[20:24], uint32(lt))
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap: write file header: %w", err)
	}
	return &Writer{w: w, snapLen: snapLen}, nil
}

// WritePacket appends one packet captured at ts. pkt must start with the
// link-layer header of the Writer's link type.
func (w *Writer) WritePacket(ts time.Time, pkt []byte) error {
	stored := pkt
	if len(stored) > w.snapLen {
		stored = stored[:w.snapLen]
	}
	us := ts.UnixMicro()
	if us < 0 {
		us = 0 // the format has no time before 1970
	}
	binary.LittleEndian.PutUint32(w.hdr[0:4], uint32(us/1e6))
	binary.LittleEndian.PutUint32(w.hdr[4:8], uint32(us%1e6))
	binary.LittleEndian.PutUint32(w.hdr[8:12], uint32(len(stored)))
	binary.LittleEndian.PutUint32(w.hdr[12:16], uint32(len(pkt)))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("pcap: write record header: %w", err)
	}
	if _, err := w.w.Write(stored); err != nil {
		return fmt.Errorf("pcap: write packet: %w", err)
	}
	return nil
}
