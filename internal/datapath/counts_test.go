package datapath

import (
	"errors"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// refusingPort takes no frame it is given.
type refusingPort struct{ *viftest.Sink }

func (refusingPort) WriteBatch([][]byte) (int, error) { return 0, errors.New("no buffer space") }

// TestUplinkCounts: what the uplink worker counts (frames, unknown
// destination, malformed), the uplink port's write errors and the
// overlay's drops all show in UplinkCounts under their own field.
func TestUplinkCounts(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	up, _ := viftest.Pair("uplink", "wire", 16)
	e.SetUplink(up, 0)
	up.Inject(frame(macB1, macA1, satest.V6A, satest.V6B, 64), vif.Meta{}) // no VM of ours
	up.Inject(make([]byte, 10), vif.Meta{})                                // shorter than Ethernet
	deadline := time.Now().Add(2 * time.Second)
	for e.UplinkCounts().Frames < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("uplink counted %+v after 2 s, want 2 frames", e.UplinkCounts())
		}
		time.Sleep(time.Millisecond)
	}
	e.OverlayStats.NoRemote.Add(1)
	e.OverlayStats.NoNeighbor.Add(2)
	e.OverlayStats.EncapErrors.Add(3)
	e.OverlayStats.DecapErrors.Add(4)
	e.OverlayStats.UnderlayNoSA.Add(5)
	e.OverlayStats.Unprotected.Add(6)
	got := e.UplinkCounts()
	want := UplinkCounts{Frames: 2, UnknownDest: 1, Malformed: 1,
		Overlay: OverlayCounts{NoRemote: 1, NoNeighbor: 2, EncapErrors: 3, DecapErrors: 4, UnderlayNoSA: 5, Unprotected: 6}}
	if got != want {
		t.Fatalf("UplinkCounts() = %+v, want %+v", got, want)
	}

	e.SetUplink(refusingPort{viftest.NewSink("refusing")}, 0)
	e.cfg.Load().uplink.write([][]byte{{1}, {2}, {3}})
	if got := e.UplinkCounts().TxErrors; got != 3 {
		t.Fatalf("TxErrors = %d after 3 refused frames, want 3", got)
	}
}
