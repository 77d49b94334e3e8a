package daemon

import (
	"sync"
	"time"
)

// An IKE rekey is make-before-break: the new Child SA carries the traffic
// before the old one goes. Between the daemon and the packets stand the
// data path's tables, published a moment after each change (Watch,
// Snapshot); an SA the daemon removed while the data path still named it
// in its tables would drop the packets in flight as expired. So the data
// path reports the generation it runs (DataPathApplied), and the IKE
// glue's switch and removal wait for it:
//
//  1. SwitchIKEChild publishes the new outbound SA and returns once the
//     data path sends with it: only then does the engine delete the old
//     Child SA with the peer.
//  2. RemoveIKEChild first publishes tables in which the old Child SA
//     carries no outbound traffic (a rekeyed pair the engine has not
//     switched to yet takes over) but still receives, and removes the SAs
//     (expiring them, zeroing their keys) once the data path runs those
//     tables.
//
// Without a data path (DataPathApplied never called) nothing waits.

// dataPathWait bounds a wait for the data path: a stuck data path must not
// stop IKE (the SAs are then switched or removed regardless).
const dataPathWait = 2 * time.Second

// dataPathSync is the generation the data path last reported.
type dataPathSync struct {
	mu      sync.Mutex
	running bool   // a data path reports
	gen     uint64 // the last generation it runs
	ch      chan struct{}
}

// DataPathApplied tells the daemon that the data path runs the snapshot of
// generation gen (or a newer one) and no longer handles packets with an
// older one (datapath.Engine.Quiesce).
func (d *Daemon) DataPathApplied(gen uint64) {
	s := &d.applied
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = true
	if gen > s.gen {
		s.gen = gen
		if s.ch != nil {
			close(s.ch)
			s.ch = nil
		}
	}
}

// waitDataPath returns once the data path runs generation gen, at once
// without a data path, or after dataPathWait. The caller holds no lock of
// the daemon's.
func (d *Daemon) waitDataPath(gen uint64) {
	s := &d.applied
	deadline := time.NewTimer(dataPathWait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if !s.running || s.gen >= gen {
			s.mu.Unlock()
			return
		}
		if s.ch == nil {
			s.ch = make(chan struct{})
		}
		ch := s.ch
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			d.log.Warn("the data path did not take a new SA within the wait; IKE goes on", "generation", gen, "wait", dataPathWait)
			return
		}
	}
}
