package daemon

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/tenant"
)

// HostSummary is what a fleet host reports about itself (`vifsec fleet
// status`): its VMs with their SA counts, and totals.
type HostSummary struct {
	Tenants int
	SAs     int // every SA, underlay and IKE SAs included
	Enabled bool
	VMs     []VMSummary // sorted by name
}

// VMSummary is one VM of a HostSummary. VIF is "attached" or why not
// ("" when no data path reports).
type VMSummary struct {
	Name, Tenant, VIF string
	SAs               int
}

// Summary returns the host's summary.
func (d *Daemon) Summary() HostSummary {
	vif := d.VIFStatus()
	d.mu.RLock()
	defer d.mu.RUnlock()
	count := map[string]int{}
	for _, vm := range d.saVM {
		count[vm]++
	}
	s := HostSummary{Tenants: len(d.tenants), SAs: d.db.Len(), Enabled: d.enabled, VMs: make([]VMSummary, 0, len(d.vms))}
	for _, n := range sortedKeys(d.vms) {
		s.VMs = append(s.VMs, VMSummary{Name: n, Tenant: d.vms[n].vm.Tenant, VIF: vif[n], SAs: count[n]})
	}
	return s
}

// VMRecords returns, from a host's stored records, those that move with
// the VM named vm to another host: the VM itself, its SAs and its SPs. It
// fails if the VM is not among them.
func VMRecords(recs []store.Record, vm string) ([]store.Record, error) {
	var out []store.Record
	found := false
	for _, r := range recs {
		switch r.Kind {
		case store.KindVM:
			if r.Name == vm {
				out = append(out, r)
				found = true
			}
		case store.KindSA:
			var x struct {
				VM string `json:"vm"`
			}
			if json.Unmarshal(r.Value, &x) == nil && x.VM == vm {
				out = append(out, r)
			}
		case store.KindSP:
			var x spRecord
			if json.Unmarshal(r.Value, &x) == nil && x.Policy.VM == vm {
				out = append(out, r)
			}
		}
	}
	if !found {
		return nil, errf(CodeNotFound, "--vm: no VM named %q (see vifsec vm list)", vm)
	}
	return out, nil
}

// CheckRecords reports the records of recs that a daemon would not apply
// (Problems), without any store: whether a host's records plus some moved
// ones form a consistent state.
func CheckRecords(recs []store.Record) ([]Problem, error) {
	d, _, probs, err := NewFleet(staticStore(recs), nil, nil)
	if err != nil {
		return nil, err
	}
	d.Discard()
	return probs, nil
}

// staticStore is a read-only store of fixed records.
type staticStore []store.Record

func (s staticStore) Load() ([]store.Record, error) {
	out := make([]store.Record, len(s))
	for i, r := range s {
		out[i] = store.Record{Kind: r.Kind, Name: r.Name, Value: bytes.Clone(r.Value)}
	}
	return out, nil
}
func (staticStore) Commit([]store.Op) error           { return errors.New("daemon: read-only store") }
func (staticStore) Close() error                      { return nil }
func (staticStore) LoadSeqs() ([]store.Record, error) { return nil, nil }
func (staticStore) RenewSeqs([]store.Record) ([]string, error) {
	return nil, errors.New("daemon: read-only store")
}

// WithDevice returns a stored VM record with its interface changed: dev
// and netns, where not "" (a VM moving to another host, whose tap has
// another name). The result is checked as `vm attach` would.
func WithDevice(rec []byte, dev, netns string) ([]byte, error) {
	var v tenant.VM
	if err := json.Unmarshal(rec, &v); err != nil {
		return nil, err
	}
	if dev != "" {
		v.Dev = dev
	}
	if netns != "" {
		v.Netns = netns
	}
	if err := v.Validate(); err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	return json.Marshal(v)
}
