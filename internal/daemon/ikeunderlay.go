package daemon

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/sa/ike"
)

// Policies without --vm all speak IKE from the uplink's underlay address.
// As responder, the engine picks the policy of an IKE_AUTH among those
// that may answer the peer by authentication method, the identity the
// peer proves (--remote-identity) and traffic selectors, in that order,
// and takes the first that fits. Two tenants' underlay policies toward
// the same VTEP with the same selectors and no distinct remote identities
// are the same policy to it: one tenant's peer is checked against the
// other tenant's key (AUTHENTICATION_FAILED), or, with equal keys, its
// Child SA is installed as the other tenant's underlay SA.

// underlayClashLocked returns a warning when underlay policy p cannot be
// told apart, by a responder, from an underlay policy of another tenant;
// "" if it can. The caller holds d.mu and has validated p.
func (d *Daemon) underlayClashLocked(p *ikeconf.Policy) string {
	if p.VM != "" {
		return ""
	}
	for _, k := range sortedKeys(d.ike.policies) {
		q := d.ike.policies[k]
		if q.VM != "" || q.Tenant == p.Tenant || q.Auth != p.Auth {
			continue
		}
		if p.RemoteAddress.IsValid() && q.RemoteAddress.IsValid() && p.RemoteAddress != q.RemoteAddress {
			continue // different peers
		}
		if distinctRemoteIDs(p.RemoteIdentity, q.RemoteIdentity) {
			continue
		}
		if !prefixesOverlap(p.LocalSubnets, q.LocalSubnets) || !prefixesOverlap(p.RemoteSubnets, q.RemoteSubnets) {
			continue // the peer's traffic selectors pick the right one
		}
		return fmt.Sprintf("policy %s and policy %s of tenant %s both speak IKE from the underlay address with the same peers and selectors: "+
			"as responder vifsec cannot tell which tenant an IKE_AUTH is for, so one tenant's IKE fails or gets the other's SAs; "+
			"give each tenant's underlay policies a distinct --remote-identity (and the peer the matching --local-identity)", p.Name, q.Name, q.Tenant)
	}
	return ""
}

// distinctRemoteIDs reports whether remote identities a and b (as
// --remote-identity takes them) make the responder pick one policy or
// the other: both set, to different identities. An unset one, or
// ANYTHING, accepts any peer.
func distinctRemoteIDs(a, b string) bool {
	if a == "" || b == "" || a == ikeconf.AnyIdentity || b == ikeconf.AnyIdentity {
		return false
	}
	ia, errA := ike.ParseID(a)
	ib, errB := ike.ParseID(b)
	if errA != nil || errB != nil {
		return a != b
	}
	return !ia.Equal(ib)
}

// prefixesOverlap reports whether a prefix of as overlaps one of bs.
func prefixesOverlap(as, bs []netip.Prefix) bool {
	return slices.ContainsFunc(as, func(a netip.Prefix) bool { return slices.ContainsFunc(bs, a.Overlaps) })
}
