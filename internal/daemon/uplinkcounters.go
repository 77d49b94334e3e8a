package daemon

import "github.com/vifsec/vifsec/internal/counters"

// UplinkCounters are the data path's counters that belong to no VM: frames
// from the uplink, what it dropped there (unknown destination, malformed),
// the uplink port's write errors and the VXLAN overlay's drops. Like
// VMCounters they start at zero when the daemon starts, except TxErrors,
// which starts at zero whenever the uplink port is (re)opened.
type UplinkCounters = counters.UplinkCounts

// SetUplinkCounters installs the data path's reader of its uplink and
// overlay counters; UplinkCounters then answers from it.
func (d *Daemon) SetUplinkCounters(f func() UplinkCounters) { d.uplinkCnt.Store(&f) }

// UplinkCounters reads the uplink's and the overlay's counters now: all
// zero when no data path reports. Equivalent to: `vifsec stats --uplink`.
func (d *Daemon) UplinkCounters() UplinkCounters {
	if f := d.uplinkCnt.Load(); f != nil {
		return (*f)()
	}
	return UplinkCounters{}
}

// Drop reasons of the uplink (UplinkDrops) and of the overlay
// (OverlayDrops), as /metrics, GET /v2/stats/uplink and `vifsec stats`
// name them.
const (
	ReasonUnknownDest  = "unknown-destination" // unicast for a MAC that is no VM of ours
	ReasonMalformed    = "malformed"           // too short, bad VLAN tag or virtio-net header
	ReasonNoFDBEntry   = "no-fdb-entry"        // a VM's unicast for a MAC its VNI's FDB does not name
	ReasonNoNeighbor   = "no-neighbor"         // the remote VTEP's next hop was not resolved while the frame waited
	ReasonEncapError   = "encap-error"         // VXLAN could not be built
	ReasonDecapError   = "decap-error"         // VXLAN for the local VTEP could not be parsed
	ReasonUnderlayNoSA = "underlay-no-sa"      // ESP for the local VTEP with no underlay SA
	ReasonUnprotected  = "unprotected"         // plain VXLAN while the underlay must be protected
)

// UplinkDrops returns the uplink's drops by reason, zeros included.
func UplinkDrops(c UplinkCounters) map[string]uint64 {
	return map[string]uint64{ReasonUnknownDest: c.UnknownDest, ReasonMalformed: c.Malformed}
}

// OverlayDrops returns the overlay's drops by reason, zeros included.
func OverlayDrops(c UplinkCounters) map[string]uint64 {
	o := c.Overlay
	return map[string]uint64{ReasonNoFDBEntry: o.NoRemote, ReasonNoNeighbor: o.NoNeighbor, ReasonEncapError: o.EncapErrors,
		ReasonDecapError: o.DecapErrors, ReasonUnderlayNoSA: o.UnderlayNoSA, ReasonUnprotected: o.Unprotected}
}
