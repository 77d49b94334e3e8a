package sa

import "fmt"

// Drop is why the data path dropped a packet. It is a small enum, not an
// error: the data path never builds an error string per packet, it
// increments the counter indexed by the reason. DropNone (the zero value)
// means the packet was not dropped.
type Drop uint8

const (
	DropNone           Drop = iota
	DropNoSA                // no SA for (vlan, mac, SPI)
	DropReplay              // sequence number replayed or left of the window
	DropAuthFailed          // ICV did not verify
	DropBadPadding          // RFC 4303 §2.4 padding or pad length wrong
	DropMalformed           // truncated or inconsistent headers
	DropSeqOverflow         // outbound SA out of sequence numbers: rekey it
	DropExpired             // SA passed its hard lifetime
	DropNoRoom              // buffer lacks headroom or tailroom (a bug upstream)
	DropPolicyDiscard       // an SP with action discard matched
	DropPolicyMismatch      // inbound packet does not match its SA's policy (RFC 4301 §5.2)
	DropSpoofedSource       // source MAC or IP is not the VM's
	DropTooBig              // exceeds the effective MTU
	DropDummy               // RFC 4303 §2.6 dummy packet (next header 59), consumed
	DropFragment            // IP fragment on a transport-mode SA (RFC 4301 §7: whole datagrams only)
	DropECN                 // RFC 6040 §4.2: outer CE on a Not-ECT inner packet
	DropEncapMismatch       // ESP in UDP for an SA without Encap, or plain ESP for one with it (RFC 3948)
	DropNATKeepalive        // RFC 3948 §2.3 NAT-keepalive (one 0xff byte to UDP 4500), consumed
	DropSeqReservation      // outbound SA reached its durable sequence reservation before the renewal landed
	DropSeqRefused          // outbound SA refuses to send: it may have sent numbers it cannot prove (rekey it)
	DropBadTag              // more than one VLAN tag (packet metadata and frame count together), or a tag other than 802.1Q
	DropEtherType           // EtherType not on the data path's allow-list (IPv4, IPv6, ARP)
	DropFragmentPolicy      // non-first IP fragment the policies do not agree on whatever its ports (RFC 4301 §7.1)
	DropBadNeighbor         // ARP or neighbour discovery message malformed, too big, or claiming addresses not the VM's
	DropWrongDest           // unicast to a VM on this host for an IP address that is not one of that VM's
	NumDrops
)

var dropNames = [NumDrops]string{
	DropNone:           "none",
	DropNoSA:           "no-sa",
	DropReplay:         "replay",
	DropAuthFailed:     "auth-failed",
	DropBadPadding:     "bad-padding",
	DropMalformed:      "malformed",
	DropSeqOverflow:    "seq-overflow",
	DropExpired:        "expired",
	DropNoRoom:         "no-room",
	DropPolicyDiscard:  "policy-discard",
	DropPolicyMismatch: "policy-mismatch",
	DropSpoofedSource:  "spoofed-source",
	DropTooBig:         "too-big",
	DropDummy:          "dummy",
	DropFragment:       "fragment",
	DropECN:            "ecn-drop",
	DropEncapMismatch:  "encap-mismatch",
	DropNATKeepalive:   "nat-keepalive",
	DropSeqReservation: "seq-reservation",
	DropSeqRefused:     "seq-refused",
	DropBadTag:         "bad-tag",
	DropEtherType:      "ethertype",
	DropFragmentPolicy: "fragment-policy",
	DropBadNeighbor:    "bad-neighbor",
	DropWrongDest:      "wrong-destination",
}

// String is the reason's name in `vifsec stats` and at /metrics.
func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return fmt.Sprintf("Drop(%d)", uint8(d))
}
