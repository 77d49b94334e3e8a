package api

import (
	"context"
	"net/http"

	"github.com/vifsec/vifsec/internal/daemon"
)

func (s *server) getUplinkStats(w http.ResponseWriter, r *http.Request) {
	c := s.d.UplinkCounters()
	writeJSON(w, http.StatusOK, UplinkStats{FramesIn: c.Frames, TxErrors: c.TxErrors,
		Drops: daemon.UplinkDrops(c), OverlayDrops: daemon.OverlayDrops(c)})
}

// UplinkStats is `vifsec stats --uplink`.
func (c *Client) UplinkStats(ctx context.Context) (out UplinkStats, err error) {
	return out, c.get(ctx, "/stats/uplink", &out)
}
