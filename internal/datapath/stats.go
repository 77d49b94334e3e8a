package datapath

import (
	"sync/atomic"

	"github.com/vifsec/vifsec/internal/counters"
)

// VMStats are one VM's counters (package counters, so that the daemon
// and the API read them without linking the data path).
type VMStats = counters.VMStats

// PortStats count what happened on a port that belongs to no single VM.
type PortStats struct {
	Frames      atomic.Uint64
	UnknownDest atomic.Uint64 // unicast for a MAC that is no VM of ours
	Malformed   atomic.Uint64
	TxErrors    atomic.Uint64
}
