package datapath

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
}

// OverlayCounts is a copy of Engine.OverlayStats.
type OverlayCounts struct {
	// NoRemote: a VM's unicast for a MAC the VNI's FDB does not name;
	// NoNeighbor: the remote VTEP's next hop was not resolved while the
	// frame waited (NeighborHoldTime), or the frame did not fit the hold;
	// EncapErrors and DecapErrors: VXLAN that could not be built or
	// parsed; UnderlayNoSA: ESP for the local VTEP with no underlay SA;
	// Unprotected: plain VXLAN while the underlay must be protected.
	NoRemote, NoNeighbor, EncapErrors, DecapErrors, UnderlayNoSA, Unprotected uint64
}

// UplinkCounts reads the uplink's and the overlay's counters now.
func (e *Engine) UplinkCounts() UplinkCounts {
	c := UplinkCounts{
		Frames:      e.UplinkRx.Frames.Load(),
		UnknownDest: e.UplinkRx.UnknownDest.Load(),
		Malformed:   e.UplinkRx.Malformed.Load(),
		TxErrors:    e.UplinkRx.TxErrors.Load(),
		Overlay: OverlayCounts{
			NoRemote:     e.OverlayStats.NoRemote.Load(),
			NoNeighbor:   e.OverlayStats.NoNeighbor.Load(),
			EncapErrors:  e.OverlayStats.EncapErrors.Load(),
			DecapErrors:  e.OverlayStats.DecapErrors.Load(),
			UnderlayNoSA: e.OverlayStats.UnderlayNoSA.Load(),
			Unprotected:  e.OverlayStats.Unprotected.Load(),
		},
	}
	if up := e.uplink.Load(); up != nil {
		c.TxErrors += up.stats.TxErrors.Load()
	}
	return c
}
