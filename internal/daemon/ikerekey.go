package daemon

// SetIKERekey installs the IKE engine's rekey-now entry point: f rekeys
// the Child SAs of policy tenant/name (its IKE SA with ikeSA) and
// reports how many rekeys it started. f is called without any Daemon
// lock held.
func (d *Daemon) SetIKERekey(f func(tenant, name string, ikeSA bool) int) { d.ike.rekey.Store(&f) }

// RekeyPolicy rekeys the policy's Child SAs now, make before break, or
// with ikeSA its IKE SA (its Child SAs move to the new one), and returns
// how many rekeys started. It fails when the policy does not exist, IKE
// does not run, or the policy has nothing established to rekey.
// Equivalent to: `vifsec policy rekey --tenant NAME --name NAME [--ike]`
// (ext; strongSwan's `swanctl --rekey --child/--ike`).
func (d *Daemon) RekeyPolicy(tenantName, name string, ikeSA bool) (int, error) {
	d.mu.RLock()
	_, ok := d.ike.policies[tenantName+"/"+name]
	enabled := d.enabled
	var err error
	if !ok {
		err = d.noPolicyLocked(tenantName, name)
	}
	d.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	what := "Child SA"
	if ikeSA {
		what = "IKE SA"
	}
	f := d.ike.rekey.Load()
	switch {
	case f == nil:
		return 0, errf(CodeInternal, "no IKE engine runs in this daemon: nothing to rekey (with a fleet store, run policy rekey on the host itself, without --host)")
	case !enabled:
		return 0, errf(CodeNotFound, "IPsec is disabled (vifsec config modify --is-enabled true): policy %s of tenant %s has no %s to rekey", name, tenantName, what)
	}
	// The engine's lock is taken inside: never with d.mu held.
	n := (*f)(tenantName, name, ikeSA)
	if n == 0 {
		return 0, errf(CodeNotFound, "policy %s of tenant %s has no established %s to rekey now (not up yet, or a rekey is already under way; see vifsec show-ikesa --tenant %s)", name, tenantName, what, tenantName)
	}
	d.log.Info("ike rekey requested", "tenant", tenantName, "policy", name, "ike_sa", ikeSA, "started", n)
	return n, nil
}
