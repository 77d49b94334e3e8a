package daemon

import (
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"net/netip"
	"slices"
	"strings"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// Snapshot is a consistent copy of the configured state at one generation,
// for the data path to rebuild its per-VM tables from. The values are
// copies; the *VMCounters and *sa.SA pointers are the live ones the data
// path updates.
type Snapshot struct {
	Gen     uint64
	Enabled bool
	Uplink  *Uplink // nil if none is set
	Tenants []tenant.Tenant
	VMs     []VMView // sorted by name
	// FDB is every static VXLAN forwarding entry, sorted by tenant then
	// MAC (bytewise).
	FDB []FDBEntry
	// UnderlaySAs is every underlay SA (`vifsec sa add --tenant`), sorted
	// by SA name: ESP between VTEPs around the tenant's VXLAN packets when
	// Uplink.Protect is ProtectUnderlay. Their scope is the zero sa.Scope:
	// inbound, look them up in the sa.DB by (sa.Scope{}, SPI).
	UnderlaySAs []UnderlaySA
}

// UnderlaySA is an underlay SA and its tenant. SA is the live SA of the
// sa.DB.
type UnderlaySA struct {
	Tenant string
	SA     *sa.SA
	seq    uint64 // install order of an IKE SA; 0 for an operator's
}

// VMView is one VM with everything the data path needs for it.
type VMView struct {
	VM       tenant.VM
	Tenant   tenant.Tenant
	Counters *VMCounters
	// Policies is the VM's SPD in match order (tenant.Compile it);
	// PolicySAs[i] is the SA of Policies[i] when its action is ipsec, and
	// nil otherwise or when that SA was removed (discard: fail closed).
	Policies  []tenant.Policy
	PolicySAs []*sa.SA
	// SAs are every SA of the VM (its inbound ESP is looked up in the
	// sa.DB by (vlan, mac, SPI); this list is for statistics).
	SAs []*sa.SA

	// IKE says an IKE policy speaks for the VM (--vm): the data path
	// hands IKE addressed to it to vifsecd's IKE engine (datapath.VM.IKE).
	IKE bool
}

// Snapshot returns the current state.
func (d *Daemon) Snapshot() *Snapshot {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s := &Snapshot{Gen: d.gen.Load(), Enabled: d.enabled}
	if d.uplink != nil {
		u := *d.uplink
		s.Uplink = &u
	}
	for _, n := range sortedKeys(d.tenants) {
		s.Tenants = append(s.Tenants, d.tenants[n])
	}
	s.FDB = d.fdbLocked("")
	idx := map[string]int{}
	for _, n := range sortedKeys(d.vms) {
		e := d.vms[n]
		v := e.vm
		v.IPs = slices.Clone(v.IPs)
		idx[n] = len(s.VMs)
		s.VMs = append(s.VMs, VMView{VM: v, Tenant: d.tenants[v.Tenant], Counters: e.counters})
	}
	for i := range s.VMs {
		// IKE policies' SPs are matched before the VM's own (ikesa.go).
		s.VMs[i].Policies, s.VMs[i].PolicySAs = d.ikeSPsLocked(s.VMs[i].VM.Name)
		s.VMs[i].IKE = len(s.VMs[i].Policies) > 0
	}
	for _, e := range d.sortedSPs() {
		vv := &s.VMs[idx[e.p.VM]]
		vv.Policies = append(vv.Policies, e.p)
		var x *sa.SA
		if e.p.Action == tenant.ActionIPsec {
			x = d.db.Get(e.p.SAName)
		}
		vv.PolicySAs = append(vv.PolicySAs, x)
	}
	for _, x := range d.db.List() {
		if tn, ok := d.saTenant[x.Name()]; ok {
			us := UnderlaySA{Tenant: tn, SA: x}
			if ch := d.ike.saChild[x.Name()]; ch != nil {
				if (ch.pending || ch.retiring) && ch.out == x.Name() {
					continue // not carrying traffic yet, or any more (ikesa.go)
				}
				us.seq = ch.seq
			}
			s.UnderlaySAs = append(s.UnderlaySAs, us)
		} else if i, ok := idx[d.saVM[x.Name()]]; ok {
			s.VMs[i].SAs = append(s.VMs[i].SAs, x)
		}
	}
	// The data path uses the last outbound SA it sees to a remote VTEP:
	// operators' SAs first, then IKE's, oldest to newest.
	slices.SortStableFunc(s.UnderlaySAs, func(a, b UnderlaySA) int { return cmpU64(a.seq, b.seq) })
	return s
}

// VMStats is one VM's counters, read now, and those of its SAs.
type VMStats struct {
	VM, Tenant            string
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	Drops                 [drop.NumCounted]uint64
	SAs                   []SAStats
	// IKE datagrams and neighbour resolution on the VM's behalf
	// (datapath.VMStats).
	IKEIn, IKEOut               uint64
	NeighRequests, NeighLearned uint64
}

// SAStats is one SA's counters, read now.
type SAStats struct {
	Name    string
	SPI     uint32
	Dir     sa.Direction
	Packets uint64
	Bytes   uint64
	Drops   [drop.NumCounted]uint64
	Expired bool
}

// Stats reads the counters of the VM named vm, or of every VM if vm is "".
// Equivalent to: `vifsec stats [--vm NAME]`.
func (d *Daemon) Stats(vm string) ([]VMStats, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	names := sortedKeys(d.vms)
	if vm != "" {
		if d.vms[vm] == nil {
			return nil, errf(CodeNotFound, "--vm: no VM named %q (see vifsec vm list)", vm)
		}
		names = []string{vm}
	}
	byVM := map[string][]SAStats{}
	for _, x := range d.db.List() {
		info := d.saInfo(x)
		st := SAStats{Name: x.Name(), SPI: x.SPI(), Dir: info.Dir, Expired: info.Expired,
			Packets: x.Stats.Packets.Load(), Bytes: x.Stats.Bytes.Load()}
		for i := range st.Drops {
			st.Drops[i] = x.Stats.Drops[i].Load()
		}
		byVM[info.VM] = append(byVM[info.VM], st)
	}
	out := make([]VMStats, 0, len(names))
	for _, n := range names {
		e := d.vms[n]
		c := e.counters
		vs := VMStats{VM: n, Tenant: e.vm.Tenant,
			PacketsIn: c.PacketsIn.Load(), PacketsOut: c.PacketsOut.Load(),
			BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load(), SAs: byVM[n],
			IKEIn: c.IKEIn.Load(), IKEOut: c.IKEOut.Load(),
			NeighRequests: c.NeighRequests.Load(), NeighLearned: c.NeighLearned.Load()}
		for i := range vs.Drops {
			vs.Drops[i] = c.Drops[i].Load()
		}
		out = append(out, vs)
	}
	return out, nil
}

// IPsecSA is one row of `vifsec show-ipsecsa` (ONTAP `security ipsec
// show-ipsecsa`) for a manual SA. Local is the VM's side: an outbound SA
// goes from Local (its --sa-source) to Remote, an inbound one the other
// way. An SA no SP uses yet (direction unknown) is shown from its
// --sa-source side with its SPI as outbound. An underlay SA has
// Underlay set and VM "": Local and Remote are VTEP addresses.
type IPsecSA struct {
	Tenant, VM, SA string
	Underlay       bool
	Policies       []string
	Local, Remote  netip.Addr
	// RemotePort is the peer's UDP port of an SA with UDP encapsulation
	// (RFC 3948), 0 for plain ESP. Remote and RemotePort are where the SA
	// sends or receives now: after a NAT rebinding (sa.SA.Rebind), the
	// new endpoint.
	RemotePort  uint16
	InboundSPI  uint32 // 0: none
	OutboundSPI uint32 // 0: none
	State       string // INSTALLED, IDLE (no SP uses it), EXPIRED, DISABLED (IPsec switched off)

	// IKEPolicy is the IKE policy of an IKE Child SA (one row for both
	// of its SAs; SA is the inbound one); "" for a manual SA.
	IKEPolicy string
}

// IPsecSAs returns the SAs of the tenant named tenantName, or of all
// tenants if it is "", sorted by tenant then SA name.
func (d *Daemon) IPsecSAs(tenantName string) ([]IPsecSA, error) {
	rep := d.readIKEReport() // before d.mu: the engine's lock is taken inside
	d.mu.RLock()
	defer d.mu.RUnlock()
	if tenantName != "" {
		if _, ok := d.tenants[tenantName]; !ok {
			return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
		}
	}
	var out []IPsecSA
	for _, x := range d.db.List() {
		if d.ike.saChild[x.Name()] != nil {
			continue // one row per Child SA, below
		}
		info := d.saInfo(x)
		underlay := info.VM == ""
		if info.Tenant == "" || (tenantName != "" && info.Tenant != tenantName) {
			continue
		}
		c := info.Config
		r := IPsecSA{Tenant: info.Tenant, VM: info.VM, SA: c.Name, Underlay: underlay, Policies: info.UsedBy}
		if info.Dir == sa.DirIn {
			r.Local, r.Remote, r.InboundSPI = c.Dst, c.Src, c.SPI
		} else {
			r.Local, r.Remote, r.OutboundSPI = c.Src, c.Dst, c.SPI
		}
		if !r.peerOf(x) {
			// A manual SA has no direction of its own (its SPs give it
			// one) and so no rebinding: its ports are as added.
			if e, ok := x.Encap(); ok && info.Dir == sa.DirIn {
				r.RemotePort = e.SrcPort
			} else if ok && info.Dir == sa.DirOut {
				r.RemotePort = e.DstPort
			}
		}
		switch {
		case info.Expired:
			r.State = "EXPIRED"
		case !d.enabled:
			r.State = "DISABLED"
		case underlay && info.Dir == sa.DirInvalid, !underlay && len(info.UsedBy) == 0:
			r.State = "IDLE"
		default:
			r.State = "INSTALLED"
		}
		out = append(out, r)
	}
	out = append(out, d.ikeIPsecSAsLocked(tenantName, rep.ChildState)...)
	slices.SortStableFunc(out, func(a, b IPsecSA) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out, nil
}

// peerOf sets r's remote end to s's UDP-encapsulated peer, where s sends
// or receives now (sa.SA.Peer: the endpoint a NAT rebinding moved it to);
// an SA without UDP encapsulation or direction leaves r as it is.
func (r *IPsecSA) peerOf(s *sa.SA) bool {
	if s == nil {
		return false
	}
	p, ok := s.Peer()
	if ok {
		r.Remote, r.RemotePort = p.Addr(), p.Port()
	}
	return ok
}

// String is for logs and test failures.
func (u Unprotected) String() string { return fmt.Sprintf("%s (vm %s, sa %s)", u.SP, u.VM, u.SA) }
