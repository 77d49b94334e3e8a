package api

import (
	"net/http"

	"github.com/vifsec/vifsec/internal/daemon"
)

func (s *server) getUplinkStats(w http.ResponseWriter, r *http.Request) {
	c := s.d.UplinkCounters()
	g := c.UDPGSO
	writeJSON(w, http.StatusOK, UplinkStats{FramesIn: c.Frames, TxErrors: c.TxErrors,
		Drops: daemon.UplinkDrops(c), OverlayDrops: daemon.OverlayDrops(c),
		UDPGSO: UDPGSOStats{TrainsSent: g.TrainsSent, SegmentsSent: g.SegmentsSent,
			TrainsReceived: g.TrainsReceived, SegmentsReceived: g.SegmentsReceived}})
}
