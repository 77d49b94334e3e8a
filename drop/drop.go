package drop

import "fmt"

// Reason is why a packet was dropped. It is a small enum, not an error:
// the data path never builds an error string per packet, it increments the
// counter indexed by the reason. None (the zero value) means the packet
// was not dropped.
type Reason uint8

// Counters: the reasons counted per VM and per SA. Their order is the
// index of the counter arrays; new counters go at the end, before
// NumCounted.
const (
	None           Reason = iota
	NoSA                  // no SA for (vlan, mac, SPI)
	Replay                // sequence number replayed or left of the window
	AuthFailed            // ICV did not verify
	BadPadding            // RFC 4303 §2.4 padding or pad length wrong
	Malformed             // truncated or inconsistent headers
	SeqOverflow           // outbound SA out of sequence numbers: rekey it
	Expired               // SA passed its hard lifetime
	NoRoom                // buffer lacks headroom or tailroom (a sizing bug upstream)
	PolicyDiscard         // an SP with action discard matched
	PolicyMismatch        // inbound packet does not match its SA's policy (RFC 4301 §5.2)
	SpoofedSource         // source MAC or IP is not the VM's
	TooBig                // exceeds the effective MTU, and cannot be made to fit
	Dummy                 // RFC 4303 §2.6 dummy packet (next header 59), consumed
	Fragment              // IP fragment where a whole datagram is needed (transport-mode SA, RFC 4301 §7; segmentation; the underlay, which is not reassembled)
	ECN                   // RFC 6040 §4.2: outer CE on a Not-ECT inner packet
	EncapMismatch         // ESP in UDP for an SA without Encap, or plain ESP for one with it (RFC 3948)
	NATKeepalive          // RFC 3948 §2.3 NAT-keepalive (one 0xff byte to UDP 4500), consumed
	SeqReservation        // outbound SA reached its durable sequence reservation before the renewal landed
	SeqRefused            // outbound SA refuses to send: it may have sent numbers it cannot prove (rekey it)
	BadTag                // more than one VLAN tag (packet metadata and frame count together), or a tag other than 802.1Q
	EtherType             // EtherType not on the data path's allow-list (IPv4, IPv6, ARP)
	FragmentPolicy        // non-first IP fragment the policies do not agree on whatever its ports (RFC 4301 §7.1)
	BadNeighbor           // ARP or neighbour discovery message malformed, too big, or claiming addresses not the VM's
	WrongDest             // unicast to a VM on this host for an IP address that is not one of that VM's
	Reordered             // sealed with a sequence number not above one its worker already sent on the SA: dropped rather than sent out of order (a bug of the parallel crypto if ever counted)
	NumCounted
)

// Finer reasons, returned by offload and overlay and counted under
// Counted.
const (
	// BadVnetHdr: the virtio_net_hdr is malformed (unknown flag or GSO
	// bits, zero gso_size) or contradicts its frame (checksum offsets out
	// of the frame or not at the L4 checksum, GSO type of another
	// protocol). Counted as Malformed.
	BadVnetHdr Reason = NumCounted + iota
	// Unsupported: valid, but a form vifsec does not segment or build
	// (UFO, GSO_NONE given to Segment, IPv6 AH, jumbograms/BIG TCP, a GSO
	// SYN or RST). Counted as Malformed.
	Unsupported
	// TooManySegments: the result needs more buffers than the caller's
	// batch holds; nothing was written. Counted as TooBig.
	TooManySegments
	// NotVXLAN: not IPv4/IPv6 UDP to the VXLAN port (ARP, IKE, ESP of an
	// underlay SA, …): not an error, the caller passes it elsewhere.
	// Counted as Malformed.
	NotVXLAN
	// NotLocal: VXLAN to an address that is not the local VTEP's.
	// Counted as WrongDest.
	NotLocal
	// BadChecksum: the outer IPv4 header or UDP checksum is wrong.
	// Counted as Malformed.
	BadChecksum
	// ZeroChecksum: VXLAN over IPv6 UDP with a zero checksum (refused, as
	// the Linux vxlan device does by default). Counted as Malformed.
	ZeroChecksum
	// BadFlags: the VXLAN I flag is clear. Counted as Malformed.
	BadFlags
	// InnerVLAN: the inner frame of VXLAN carries an 802.1Q tag (RFC 7348
	// §6: discarded unless configured). Counted as BadTag.
	InnerVLAN
	// BadOuter: vxlan.Encap's Outer is unusable: addresses missing or of
	// different families, VNI above the maximum (a configuration bug
	// upstream). Counted as NoRoom, the other bug upstream.
	BadOuter
	NumReasons
)

var names = [NumReasons]string{
	None:            "none",
	NoSA:            "no-sa",
	Replay:          "replay",
	AuthFailed:      "auth-failed",
	BadPadding:      "bad-padding",
	Malformed:       "malformed",
	SeqOverflow:     "seq-overflow",
	Expired:         "expired",
	NoRoom:          "no-room",
	PolicyDiscard:   "policy-discard",
	PolicyMismatch:  "policy-mismatch",
	SpoofedSource:   "spoofed-source",
	TooBig:          "too-big",
	Dummy:           "dummy",
	Fragment:        "fragment",
	ECN:             "ecn-drop",
	EncapMismatch:   "encap-mismatch",
	NATKeepalive:    "nat-keepalive",
	SeqReservation:  "seq-reservation",
	SeqRefused:      "seq-refused",
	BadTag:          "bad-tag",
	EtherType:       "ethertype",
	FragmentPolicy:  "fragment-policy",
	BadNeighbor:     "bad-neighbor",
	WrongDest:       "wrong-destination",
	Reordered:       "reordered",
	BadVnetHdr:      "bad-vnet-hdr",
	Unsupported:     "unsupported",
	TooManySegments: "too-many-segments",
	NotVXLAN:        "not-vxlan",
	NotLocal:        "not-local",
	BadChecksum:     "bad-checksum",
	ZeroChecksum:    "zero-checksum",
	BadFlags:        "bad-flags",
	InnerVLAN:       "inner-vlan",
	BadOuter:        "bad-outer",
}

var counted = [NumReasons - NumCounted]Reason{
	BadVnetHdr - NumCounted:      Malformed,
	Unsupported - NumCounted:     Malformed,
	TooManySegments - NumCounted: TooBig,
	NotVXLAN - NumCounted:        Malformed,
	NotLocal - NumCounted:        WrongDest,
	BadChecksum - NumCounted:     Malformed,
	ZeroChecksum - NumCounted:    Malformed,
	BadFlags - NumCounted:        Malformed,
	InnerVLAN - NumCounted:       BadTag,
	BadOuter - NumCounted:        NoRoom,
}

// String is the reason's name: for a counter, its name in `vifsec stats`
// and at /metrics.
func (r Reason) String() string {
	if r < NumReasons {
		return names[r]
	}
	return fmt.Sprintf("Drop(%d)", uint8(r))
}

// Counted is the counter r is counted under (r itself for r below
// NumCounted), or NumCounted for a value that is no reason.
func (r Reason) Counted() Reason {
	switch {
	case r < NumCounted:
		return r
	case r < NumReasons:
		return counted[r-NumCounted]
	}
	return NumCounted
}
