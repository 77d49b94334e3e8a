package datapath

import "github.com/vifsec/vifsec/internal/counters"

// UplinkCounts, OverlayCounts and UDPGSOCounts are copies of the counters that belong to
// no single VM (package counters).
type (
	UplinkCounts  = counters.UplinkCounts
	OverlayCounts = counters.OverlayCounts
	UDPGSOCounts  = counters.UDPGSOCounts
)

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
		UDPGSO: UDPGSOCounts{
			TrainsSent:       e.GSOStats.TrainsSent.Load(),
			SegmentsSent:     e.GSOStats.SegmentsSent.Load(),
			TrainsReceived:   e.GSOStats.TrainsReceived.Load(),
			SegmentsReceived: e.GSOStats.SegmentsReceived.Load(),
		},
	}
	if up := e.cfg.Load().uplink; up != nil {
		c.TxErrors += up.stats.TxErrors.Load()
	}
	return c
}
