package store

import "context"

// Watcher is implemented by a Store whose records can change without the
// daemon committing them: the fleet store on etcd, where other hosts and
// operators write desired state. The embedded store does not implement it.
//
// Watch delivers the full record set (as Load would return it, in any
// order) each time it changes, until ctx is done; the channel is then
// closed. Snapshots are coalesced: a slow reader gets the latest state,
// not every intermediate one. The first snapshot delivered is the state
// after the last Load. A snapshot may reflect the daemon's own commits
// (they come back through the watch): applying it again must change
// nothing.
type Watcher interface {
	Watch(ctx context.Context) <-chan *Snapshot
}

// Snapshot is the full desired state at one point of the store's history.
type Snapshot struct {
	Records []Record
	// Revision orders snapshots of one store; it grows.
	Revision int64
	// Unreadable names records that are present but could not be read
	// (for example encrypted with a key this host does not have); they are
	// not in Records.
	Unreadable []string
	// Token is the store's own bookkeeping for this snapshot (see the
	// implementation).
	Token any
}
