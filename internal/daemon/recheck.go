package daemon

import "github.com/vifsec/vifsec/internal/store"

// NewConvergerFrom is NewConverger for a Daemon whose state already is
// recs (the store's records now, on a store this daemon alone writes):
// the records of kinds Converge does not decode (IKE policies,
// certificates, CRLs) count as applied, so Converge(recs) applies them
// again only if they change later. vifsecd uses it on SIGHUP to re-read
// its embedded store: converging to it changes nothing unless memory and
// the store disagree, and says so.
func NewConvergerFrom(d *Daemon, recs []store.Record) *Converger {
	c := NewConverger(d)
	c.extraSeen = digestOther(recs)
	return c
}
