package datapath

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

// PortStats count what happened on a port that belongs to no single VM.
type PortStats struct {
	Frames      atomic.Uint64
	UnknownDest atomic.Uint64 // unicast for a MAC that is no VM of ours
	Malformed   atomic.Uint64
	TxErrors    atomic.Uint64
}
