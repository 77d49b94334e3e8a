package daemon

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// The rules a stored state must keep, in one place for both of its
// readers: New's restore, which refuses to start on the first record that
// breaks one (naming it), and the Converger, which leaves such a record
// out and reports it as a Problem. A record is
//
//  1. decoded and checked on its own (decodeRecord), then
//  2. checked against the records before it in store order
//     (desired.admit): tenants before their VMs, VMs before their SAs,
//     SAs before the SPs that name them.
//
// The IKE kinds (certificates, CRLs, policies) come last in store order
// and are checked against the state built from the others (restoreIKE).

// desired is the state a record set describes.
type desired struct {
	enabled bool
	uplink  *Uplink
	tenants map[string]tenant.Tenant
	vms     map[string]tenant.VM
	sas     map[string]*wantSA
	sps     map[string]*spEntry
	fdb     map[fdbKey]FDBEntry

	vnis   map[uint32]string   // VNI → tenant
	scopes map[sa.Scope]string // (vlan, mac) → VM
	keys   map[sa.Key]string   // SA key → SA
}

type wantSA struct {
	owner saOwner
	cfg   sa.Config // keys included
}

// desire is step 2: it checks the decoded records against one another in
// store order and returns the state made of those that pass; each record
// that does not goes to probs.
func (s *recordSet) desire(enabled bool, probs *problems) *desired {
	n := func(k store.Kind) int { return len(s.byKind[k]) }
	want := &desired{enabled: enabled,
		tenants: make(map[string]tenant.Tenant, n(store.KindTenant)), vms: make(map[string]tenant.VM, n(store.KindVM)),
		sas: make(map[string]*wantSA, n(store.KindSA)), sps: make(map[string]*spEntry, n(store.KindSP)),
		fdb:  make(map[fdbKey]FDBEntry, n(store.KindFDB)),
		vnis: map[uint32]string{}, scopes: make(map[sa.Scope]string, n(store.KindVM)), keys: make(map[sa.Key]string, n(store.KindSA))}
	for _, kind := range store.Kinds() {
		for _, r := range s.byKind[kind] {
			if o := s.objs[recKey{r.Kind, r.Name}]; o != nil {
				if err := want.admit(o); err != nil {
					probs.add(r, err)
				}
			}
		}
	}
	return want
}

// admit adds obj, decoded by decodeRecord, to the state if it agrees with
// what is there, else says why not.
func (w *desired) admit(obj any) error {
	switch o := obj.(type) {
	case configRecord:
		w.enabled = o.IPsecEnabled
	case Uplink:
		w.uplink = &o
	case tenant.Tenant:
		if other, dup := w.vnis[o.VNI]; dup && o.VNI != 0 {
			return fmt.Errorf("VNI %d is also tenant %q's", o.VNI, other)
		}
		w.vnis[o.VNI] = o.Name
		w.tenants[o.Name] = o
	case tenant.VM:
		if _, ok := w.tenants[o.Tenant]; !ok {
			return fmt.Errorf("tenant %q is not stored", o.Tenant)
		}
		sc := sa.Scope{VLAN: o.VLAN, MAC: header.MAC(o.MAC)}
		if other, dup := w.scopes[sc]; dup {
			return fmt.Errorf("same (vlan, mac) as VM %q", other)
		}
		w.scopes[sc] = o.Name
		w.vms[o.Name] = o
	case *wantSA:
		return w.admitSA(o)
	case *spEntry:
		p := o.p
		if _, ok := w.vms[p.VM]; !ok {
			return fmt.Errorf("VM %q is not stored", p.VM)
		}
		if s := w.sas[p.SAName]; p.Action == tenant.ActionIPsec && s != nil && s.owner.vm != p.VM {
			return fmt.Errorf("SA %q is not an SA of VM %q (%s)", p.SAName, p.VM, s.owner)
		}
		w.sps[p.Name] = o
	case FDBEntry:
		if _, ok := w.tenants[o.Tenant]; !ok {
			return fmt.Errorf("tenant %q is not stored", o.Tenant)
		}
		w.fdb[o.key()] = o
	default:
		panic(fmt.Sprintf("daemon: admit: %T is no stored object", obj))
	}
	return nil
}

// admitSA checks an SA against its owner (a VM: the VM's scope; a
// tenant: the zero scope of underlay SAs) and the other SAs of its scope.
func (w *desired) admitSA(s *wantSA) error {
	var scope sa.Scope
	if s.owner.vm != "" {
		v, ok := w.vms[s.owner.vm]
		if !ok {
			return fmt.Errorf("VM %q is not stored", s.owner.vm)
		}
		scope = sa.Scope{VLAN: v.VLAN, MAC: header.MAC(v.MAC)}
	} else if _, ok := w.tenants[s.owner.tenant]; !ok {
		return fmt.Errorf("tenant %q is not stored", s.owner.tenant)
	}
	if s.cfg.Scope != scope {
		return fmt.Errorf("stored with %s but its %s has %s", s.cfg.Scope, s.owner, scope)
	}
	if other, dup := w.keys[s.cfg.Key()]; dup {
		return fmt.Errorf("SPI 0x%x is also SA %q's in the same scope", s.cfg.SPI, other)
	}
	w.keys[s.cfg.Key()] = s.cfg.Name
	w.sas[s.cfg.Name] = s
	return nil
}

// decodeRecord decodes and checks one record on its own.
func decodeRecord(r store.Record) (any, error) {
	named := func(got string) error {
		if got != r.Name {
			return fmt.Errorf("holds %s %q", r.Kind, got)
		}
		return nil
	}
	switch r.Kind {
	case store.KindConfig:
		var c configRecord
		return c, json.Unmarshal(r.Value, &c)
	case store.KindUplink:
		var u Uplink
		if err := json.Unmarshal(r.Value, &u); err != nil {
			return nil, err
		}
		return u, u.Validate()
	case store.KindTenant:
		var t tenant.Tenant
		if err := json.Unmarshal(r.Value, &t); err != nil {
			return nil, err
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		return t, named(t.Name)
	case store.KindVM:
		var v tenant.VM
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return nil, err
		}
		if err := v.Validate(); err != nil {
			return nil, err
		}
		return v, named(v.Name)
	case store.KindSA:
		o, c, err := decodeSA(r.Value)
		if err == nil {
			err = named(c.Name)
		}
		if err == nil && (o.vm == "") == (o.tenant == "") {
			err = fmt.Errorf("names both or neither of a VM (%q) and a tenant (%q)", o.vm, o.tenant)
		}
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			clear(c.EncKey)
			clear(c.IntegKey)
			return nil, err
		}
		return &wantSA{owner: o, cfg: c}, nil
	case store.KindSP:
		var s spRecord
		if err := json.Unmarshal(r.Value, &s); err != nil {
			return nil, err
		}
		if err := s.Policy.Validate(); err != nil {
			return nil, err
		}
		return &spEntry{seq: s.Seq, p: s.Policy}, named(s.Policy.Name)
	case store.KindFDB:
		var e FDBEntry
		if err := json.Unmarshal(r.Value, &e); err != nil {
			return nil, err
		}
		if err := e.Validate(); err != nil {
			return nil, err
		}
		return e, named(e.key().storeName())
	}
	return nil, fmt.Errorf("kind %s is not converged here", r.Kind)
}

// firstStored returns the problem of the record that comes first in
// store order: the one a reader that stops at the first problem meets.
func firstStored(probs []Problem) Problem {
	return slices.MinFunc(probs, func(a, b Problem) int {
		if ka, kb := slices.Index(store.Kinds(), a.Kind), slices.Index(store.Kinds(), b.Kind); ka != kb {
			return ka - kb
		}
		return strings.Compare(a.Name, b.Name)
	})
}
