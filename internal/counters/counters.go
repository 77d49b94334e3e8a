// Package counters holds the data path's counters as the rest of vifsecd
// reads them: a VM's (VMStats, updated by the data path's workers with
// atomic adds) and a snapshot of those that belong to no VM
// (UplinkCounts).
//
// It is a leaf: the daemon, the API server and metrics read the counters
// through it without linking the data path. It must not import anything
// of vifsec but package drop (the drop reasons).
package counters

import (
	"github.com/vifsec/vifsec/drop"
	"sync/atomic"
)

// VMStats are one VM's counters: what it sent and received and what was
// dropped, by reason. Updated lock-free by workers, read at scrape time.
// They live as long as the VM's binding, across table updates.
type VMStats struct {
	PacketsOut, BytesOut atomic.Uint64 // from the VM, forwarded
	PacketsIn, BytesIn   atomic.Uint64 // delivered to the VM
	Drops                [drop.NumCounted]atomic.Uint64
	// IKEIn counts IKE messages from the wire handed to the IKE handler
	// instead of the VM; IKEOut what SendIKE and SendNATKeepalive sent
	// on its behalf.
	IKEIn, IKEOut atomic.Uint64
	// NeighRequests counts ARP requests and Neighbor Solicitations sent
	// on the VM's behalf to resolve an IKE peer; NeighLearned the answers
	// (or the guest's frames) that taught one.
	NeighRequests, NeighLearned atomic.Uint64
}

// Drop counts one drop for reason d, under the counter it is counted as
// (drop.Reason.Counted: offload's and the overlay's finer reasons fold
// into the counters).
func (s *VMStats) Drop(d drop.Reason) {
	if c := d.Counted(); c < drop.NumCounted {
		s.Drops[c].Add(1)
	}
}

// UplinkCounts is a copy, read at one moment, of the counters that belong
// to no single VM: the uplink's and the VXLAN overlay's. Reading them takes
// no lock and touches nothing the workers write but the atomics.
type UplinkCounts struct {
	// Frames received from the uplink; a super-frame the kernel coalesced
	// (GRO, with virtio-net headers) is not counted.
	Frames uint64
	// UnknownDest: unicast from the uplink (or out of a VXLAN tunnel) for
	// a MAC that is no VM of ours; Malformed: too short, bad VLAN tag or
	// virtio-net header, or a checksum that cannot be completed.
	UnknownDest, Malformed uint64
	// TxErrors: frames the uplink port did not take, since it was last
	// opened (a new uplink port starts at zero).
	TxErrors uint64
	Overlay  OverlayCounts
	UDPGSO   UDPGSOCounts
}

// UDPGSOCounts count UDP GSO super-frames (GSO_UDP_L4 "trains"): those
// sent toward the uplink, each joined from the ESP-in-UDP or VXLAN
// datagrams cut from one guest TSO super-frame, and those received whole
// from the uplink and cut into their datagrams by vifsec, with the
// datagrams each carried.
type UDPGSOCounts struct {
	TrainsSent, SegmentsSent         uint64
	TrainsReceived, SegmentsReceived uint64
}

// OverlayCounts is a copy of Engine.OverlayStats.
type OverlayCounts struct {
	// NoRemote: a VM's unicast for a MAC the VNI's FDB does not name;
	// NoNeighbor: the remote VTEP's next hop was not resolved while the
	// frame waited (datapath.NeighborHoldTime), or the frame did not fit
	// the hold;
	// EncapErrors and DecapErrors: VXLAN that could not be built or
	// parsed; UnderlayNoSA: ESP for the local VTEP with no underlay SA;
	// Unprotected: plain VXLAN while the underlay must be protected.
	NoRemote, NoNeighbor, EncapErrors, DecapErrors, UnderlayNoSA, Unprotected uint64
}
