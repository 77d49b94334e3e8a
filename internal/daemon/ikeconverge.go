package daemon

import (
	"bytes"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/store"
)

// ikeConvergers are the Converger's handlers for the IKE kinds (policies,
// certificates, CRLs), which a fleet keeps fleet-wide: another host's
// change of one applies here live. Each handler replaces its kind's
// objects with those of recs, checked as a restore checks them; a record
// that breaks a rule is left out and reported. The Converger calls them
// in store order (certificates, CRLs, policies) with d.mu held, and the
// IKE controller picks the result up from the change that follows.
func ikeConvergers() map[store.Kind]func(*Daemon, []store.Record) []Problem {
	h := func(kind store.Kind) func(*Daemon, []store.Record) []Problem {
		return func(d *Daemon, recs []store.Record) []Problem { return d.convergeIKEKind(kind, recs) }
	}
	return map[store.Kind]func(*Daemon, []store.Record) []Problem{
		store.KindCertificate: h(store.KindCertificate),
		store.KindCRL:         h(store.KindCRL),
		store.KindPolicy:      h(store.KindPolicy),
	}
}

// convergeIKEKind makes recs the objects of kind. Objects that go are
// dropped, not zeroed: the IKE engine may still hold a policy's secret
// until its next SetPolicies.
func (d *Daemon) convergeIKEKind(kind store.Kind, recs []store.Record) []Problem {
	switch kind {
	case store.KindCertificate:
		d.ike.certs = map[string]*ikeconf.Certificate{}
	case store.KindCRL:
		d.ike.crls = map[string]*ikeconf.CRL{}
	case store.KindPolicy:
		d.ike.policies = map[string]*ikeconf.Policy{}
	default:
		return nil
	}
	var probs []Problem
	for _, r := range recs {
		// restoreIKE zeroes secrets it reads; the store's bytes are shared.
		r.Value = bytes.Clone(r.Value)
		if err := d.restoreIKE(r); err != nil {
			probs = append(probs, Problem{Kind: r.Kind, Name: r.Name, Err: err.Error()})
		}
	}
	return probs
}
