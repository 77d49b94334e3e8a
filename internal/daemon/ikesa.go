package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// SAs that IKE negotiates (Child SAs) are installed here by the IKE glue
// (internal/ikectl), as strongSwan's charon installs them in the kernel:
//
//   - They are managed by IKE: listed by `sa list` and `show-ipsecsa`, but
//     `sa remove` refuses them and `sa remove --removeall` leaves them;
//     `policy delete` (or modify) removes them, and IKE deletes and
//     rekeys them.
//   - They are not stored: IKE SAs do not survive a restart, so neither
//     do the SAs derived from them; IKE negotiates new ones.
//   - A policy with --vm protects the VM's traffic through SPs derived
//     from it (IKESPs), matched before the VM's own SPs: for each
//     installed Child SA, newest first, an SP per direction and pair of
//     negotiated traffic selectors; then the policy's own selectors with
//     action ipsec and no SA, so that its traffic is dropped, not sent in
//     clear, until IKE has installed SAs (ONTAP: no traffic flows before).
//   - A policy without --vm installs underlay SAs of its tenant (ESP
//     between VTEPs, used with uplink --protect underlay); the newest SA
//     to a remote VTEP is used.

// ikeSPIHold is how long an SPI handed out by AllocIKESPI stays reserved
// without being installed or freed: a safety net, in case the engine
// forgets to free it.
const ikeSPIHold = 10 * time.Minute

// IKEChild is a Child SA as IKE installs it: its inbound and outbound
// SA (Dir set, SPIs from AllocIKESPI for In and from the peer for Out)
// and the traffic selectors it was negotiated for.
type IKEChild struct {
	Tenant, Policy    string
	In, Out           sa.Config
	LocalTS, RemoteTS []netip.Prefix
	// Protocol (0 any) and ports (the zero PortRange is any) as
	// negotiated; for a VM they must be what the VM's SPD can express.
	Protocol                uint8
	LocalPorts, RemotePorts ikeconf.PortRange
	// Pending keeps Out from carrying traffic until SwitchIKEChild: the
	// engine installs a rekeyed pair first and moves traffic later.
	Pending bool
}

type ikeChild struct {
	seq                     uint64
	tenant, policy, vm      string
	scope                   sa.Scope
	in, out                 string // SA names
	inSPI, outSPI           uint32
	local, remote           netip.Addr
	localTS, remoteTS       []netip.Prefix
	proto                   uint8
	localPorts, remotePorts ikeconf.PortRange
	mode                    sa.Mode
	pending                 bool // Out does not carry traffic yet
	retiring                bool // being removed: Out carries no traffic any more, In still receives
}

// ikeSAName names an IKE SA as the engine does:
// "ike/TENANT/POLICY/INSPI-in" (or -out), INSPI the inbound SPI in 8 hex
// digits. An operator's SA name cannot hold '/', so it never collides.
func ikeSAName(tenantName, policy string, inSPI uint32, dir sa.Direction) string {
	return fmt.Sprintf("ike/%s/%s/%08x-%s", tenantName, policy, inSPI, dir)
}

// isIKESAName tells an IKE SA's name from an operator's.
func isIKESAName(name string) bool { return strings.HasPrefix(name, "ike/") }

// AllocIKESPI returns a random SPI unused in scope (no SA has it, and no
// earlier AllocIKESPI handed it out without it being installed or freed
// since), for an inbound SA that IKE is negotiating.
func (d *Daemon) AllocIKESPI(scope sa.Scope) (uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now().UnixNano()
	for k, exp := range d.ike.reserved {
		if exp < now {
			delete(d.ike.reserved, k)
		}
	}
	for range 1 << 16 {
		spi := randomSPIValue()
		k := sa.Key{Scope: scope, SPI: spi}
		if _, held := d.ike.reserved[k]; held || d.db.Lookup(k) != nil {
			continue
		}
		d.ike.reserved[k] = now + int64(ikeSPIHold)
		return spi, nil
	}
	return 0, fmt.Errorf("no unused SPI found in %s", scope)
}

// FreeIKESPI releases an SPI from AllocIKESPI that was never installed.
func (d *Daemon) FreeIKESPI(scope sa.Scope, spi uint32) {
	d.mu.Lock()
	delete(d.ike.reserved, sa.Key{Scope: scope, SPI: spi})
	d.mu.Unlock()
}

// IKEInboundPackets returns how many ESP packets the data path has
// authenticated on the inbound SA (scope, spi): its packet counter plus
// the dummy packets (RFC 4303 §2.6) it consumed, which passed the ICV and
// the replay window too; 0 when there is no such SA. It takes no lock
// (the SA database is read lock-free), so the IKE engine may call it with
// its own lock held.
func (d *Daemon) IKEInboundPackets(scope sa.Scope, spi uint32) uint64 {
	s := d.db.Lookup(sa.Key{Scope: scope, SPI: spi})
	if s == nil || s.Dir() == sa.DirOut {
		return 0
	}
	return s.Stats.Packets.Load() + s.Stats.Drops[drop.Dummy.Counted()].Load()
}

// RebindIKEChild moves an IKE Child SA's two SAs, named in and out, to
// the peer's new endpoint "to" in place (sa.SA.Rebind), as IKE does when
// the peer behind a NAT moved. An SA already gone is skipped.
func (d *Daemon) RebindIKEChild(in, out string, to netip.AddrPort) error {
	var errs []error
	for _, n := range []string{in, out} {
		if s := d.db.Get(n); s != nil {
			if err := s.Rebind(to); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.log.Info("IKE Child SA follows its peer", "in", in, "out", out, "to", to.String())
	return nil
}

// ikeScopeLocked returns the scope and VM of policy p's SAs.
func (d *Daemon) ikeScopeLocked(p *ikeconf.Policy) (sa.Scope, error) {
	if p.VM == "" {
		return sa.Scope{}, nil
	}
	e := d.vms[p.VM]
	if e == nil {
		return sa.Scope{}, fmt.Errorf("VM %q of policy %s is not attached", p.VM, p.Name)
	}
	return e.scope(), nil
}

// InstallIKEChild installs the SA pair of a Child SA of the policy
// (c.Tenant, c.Policy), in one change: the data path sees both or
// neither. The SAs keep the engine's names when they are IKE names
// ("ike/…"), else get them (ikeSAName); c's scope
// must be the policy's (its VM's, or the zero scope without --vm). c's
// key slices are zeroed when it returns.
func (d *Daemon) InstallIKEChild(c IKEChild) error {
	defer func() {
		clear(c.In.EncKey)
		clear(c.In.IntegKey)
		clear(c.Out.EncKey)
		clear(c.Out.IntegKey)
	}()
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.ike.policies[c.Tenant+"/"+c.Policy]
	if p == nil {
		return errf(CodeNotFound, "ike: tenant %s has no policy %q (deleted meanwhile)", c.Tenant, c.Policy)
	}
	scope, err := d.ikeScopeLocked(p)
	if err != nil {
		return wrap(CodeNotFound, err)
	}
	if c.In.Scope != scope || c.Out.Scope != scope {
		return errf(CodeInvalid, "ike: child SA of policy %s has scope %s/%s, want %s", p.Name, c.In.Scope, c.Out.Scope, scope)
	}
	if c.In.Dir != sa.DirIn || c.Out.Dir != sa.DirOut {
		return errf(CodeInvalid, "ike: child SA of policy %s: directions %v/%v, want in/out", p.Name, c.In.Dir, c.Out.Dir)
	}
	if c.In.Mode != p.Mode || c.Out.Mode != p.Mode {
		return errf(CodeInvalid, "ike: child SA of policy %s in mode %v, the policy's is %v", p.Name, c.In.Mode, p.Mode)
	}
	if len(c.LocalTS) == 0 || len(c.RemoteTS) == 0 {
		return errf(CodeInvalid, "ike: child SA of policy %s has no traffic selectors", p.Name)
	}
	if p.VM != "" {
		if err := vmSelectorsExpressible(&ikeconf.Policy{Protocol: c.Protocol, LocalPorts: c.LocalPorts, RemotePorts: c.RemotePorts}); err != nil {
			return errf(CodeInvalid, "ike: child SA of policy %s was narrowed to selectors VM %s's SPD cannot hold: %v", p.Name, p.VM, err)
		}
	}
	for _, k := range []sa.Key{c.In.Key(), c.Out.Key()} {
		if old := d.db.Lookup(k); old != nil {
			return errf(CodeExists, "ike: SPI 0x%08x is already used by SA %q in %s", k.SPI, old.Name(), scope)
		}
	}
	if c.In.SPI == c.Out.SPI {
		return errf(CodeExists, "ike: inbound and outbound SPI are both 0x%08x in %s", c.In.SPI, scope)
	}
	now := time.Now().UTC().Round(0)
	if !isIKESAName(c.In.Name) || !isIKESAName(c.Out.Name) || c.In.Name == c.Out.Name {
		// The engine names its SAs so (and finds them by name in lifetime
		// events); anything else gets the same scheme.
		c.In.Name, c.Out.Name = ikeSAName(p.Tenant, p.Name, c.In.SPI, sa.DirIn), ikeSAName(p.Tenant, p.Name, c.In.SPI, sa.DirOut)
	}
	for _, x := range []*sa.Config{&c.In, &c.Out} {
		if x.Created.IsZero() {
			x.Created = now
		}
	}
	in, err := sa.New(c.In)
	if err != nil {
		return errf(CodeInvalid, "ike: inbound SA of policy %s: %v", p.Name, err)
	}
	out, err := sa.New(c.Out)
	if err != nil {
		return errf(CodeInvalid, "ike: outbound SA of policy %s: %v", p.Name, err)
	}
	if err := d.db.Apply([]*sa.SA{in, out}, nil); err != nil {
		return errf(CodeExists, "ike: policy %s: %v", p.Name, err)
	}
	delete(d.ike.reserved, c.In.Key())
	d.ike.seq++
	ch := &ikeChild{seq: d.ike.seq, tenant: p.Tenant, policy: p.Name, vm: p.VM, scope: scope, in: c.In.Name, out: c.Out.Name,
		inSPI: c.In.SPI, outSPI: c.Out.SPI, local: c.In.Dst, remote: c.In.Src,
		localTS: slices.Clone(c.LocalTS), remoteTS: slices.Clone(c.RemoteTS),
		proto: c.Protocol, localPorts: c.LocalPorts, remotePorts: c.RemotePorts, mode: p.Mode, pending: c.Pending}
	d.ike.children[ch.in] = ch
	d.ike.saChild[ch.in], d.ike.saChild[ch.out] = ch, ch
	for _, n := range []string{ch.in, ch.out} {
		if p.VM != "" {
			d.saVM[n] = p.VM
		} else {
			d.saTenant[n] = p.Tenant
		}
	}
	d.changed()
	d.log.Info("ike child SA installed", "tenant", p.Tenant, "policy", p.Name, "vm", p.VM,
		"in_spi", fmt.Sprintf("0x%08x", c.In.SPI), "out_spi", fmt.Sprintf("0x%08x", c.Out.SPI),
		"local", c.In.Dst, "remote", c.In.Src, "enc", c.In.Enc.String(), "integ", c.In.Integ.String(), "pending", c.Pending)
	return nil
}

// SwitchIKEChild makes the outbound SA of the Child SA whose inbound SA
// has inSPI in scope carry its traffic (it was installed Pending). It is
// matched before the older children of its policy, which stay until
// RemoveIKEChild. It returns once the data path sends with it (applied.go).
func (d *Daemon) SwitchIKEChild(scope sa.Scope, inSPI uint32) error {
	d.mu.Lock()
	s := d.db.Lookup(sa.Key{Scope: scope, SPI: inSPI})
	if s == nil {
		d.mu.Unlock()
		return errf(CodeNotFound, "ike: no SA with SPI 0x%08x in %s", inSPI, scope)
	}
	ch := d.ike.saChild[s.Name()]
	if ch == nil || ch.in != s.Name() {
		d.mu.Unlock()
		return errf(CodeInvalid, "ike: SA %q is not the inbound SA of an IKE child SA", s.Name())
	}
	if !ch.pending {
		d.mu.Unlock()
		return nil
	}
	d.switchLocked(ch)
	d.changed()
	gen := d.gen.Load()
	d.mu.Unlock()
	d.waitDataPath(gen)
	return nil
}

func (d *Daemon) switchLocked(ch *ikeChild) {
	ch.pending = false
	d.log.Info("ike child SA carries outbound traffic", "tenant", ch.tenant, "policy", ch.policy, "vm", ch.vm, "out_spi", fmt.Sprintf("0x%08x", ch.outSPI))
}

// RemoveIKEChild removes the Child SA whose inbound SA has inSPI in scope.
// Removing one that is gone (the policy was deleted) is not an error.
//
// The child first stops carrying outbound traffic: if it did, the newest
// child of its policy that was installed Pending takes over (a rekey's
// responder may send on the new SA once the old one is deleted, RFC 7296
// §2.8). Its SAs leave the sa.DB once the data path runs tables without
// that (applied.go); until then its inbound SA still takes what the peer
// sent before the delete.
func (d *Daemon) RemoveIKEChild(scope sa.Scope, inSPI uint32) error {
	d.mu.Lock()
	s := d.db.Lookup(sa.Key{Scope: scope, SPI: inSPI})
	if s == nil {
		d.mu.Unlock()
		return nil
	}
	ch := d.ike.saChild[s.Name()]
	if ch == nil || ch.in != s.Name() {
		d.mu.Unlock()
		return errf(CodeInvalid, "ike: SA %q is not the inbound SA of an IKE child SA", s.Name())
	}
	if !ch.retiring {
		ch.retiring = true
		if !ch.pending {
			var next *ikeChild
			for _, o := range d.childrenOfLocked(ch.tenant + "/" + ch.policy) {
				if o.pending && !o.retiring && o.scope == ch.scope && o.seq > ch.seq {
					next = o // the newest
				}
			}
			if next != nil {
				d.switchLocked(next)
			}
		}
		d.changed()
	}
	gen := d.gen.Load()
	d.mu.Unlock()
	d.waitDataPath(gen)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ike.children[ch.in] != ch {
		return nil // removed meanwhile (policy deleted, another RemoveIKEChild)
	}
	d.removeChildrenLocked([]*ikeChild{ch})
	d.changed()
	return nil
}

// removeChildrenLocked takes chs out of the sa.DB and the maps; the caller
// holds d.mu and publishes the change.
func (d *Daemon) removeChildrenLocked(chs []*ikeChild) {
	var names []string
	for _, ch := range chs {
		names = append(names, ch.in, ch.out)
	}
	if err := d.db.Apply(nil, names); err != nil {
		panic(fmt.Sprintf("daemon: sa.DB refused to remove IKE SAs %v: %v", names, err))
	}
	for _, ch := range chs {
		delete(d.ike.children, ch.in)
		for _, n := range []string{ch.in, ch.out} {
			delete(d.ike.saChild, n)
			delete(d.saVM, n)
			delete(d.saTenant, n)
		}
		d.log.Info("ike child SA removed", "tenant", ch.tenant, "policy", ch.policy, "vm", ch.vm,
			"in_spi", fmt.Sprintf("0x%08x", ch.inSPI), "out_spi", fmt.Sprintf("0x%08x", ch.outSPI))
	}
}

// childrenOfLocked returns the installed children of the policy key
// ("TENANT/NAME"), oldest first.
func (d *Daemon) childrenOfLocked(key string) []*ikeChild {
	var out []*ikeChild
	for _, ch := range d.ike.children {
		if ch.tenant+"/"+ch.policy == key {
			out = append(out, ch)
		}
	}
	slices.SortFunc(out, func(a, b *ikeChild) int { return cmpU64(a.seq, b.seq) })
	return out
}

// tenantPort turns an IKE port selector the VM's SPD can express (see
// vmSelectorsExpressible) into an SP port.
func tenantPort(r ikeconf.PortRange) tenant.Port {
	if n, ok := r.Single(); ok {
		return tenant.PortNumber(n)
	}
	return tenant.PortAny
}

func tenantProto(p uint8) tenant.Proto {
	switch p {
	case ikeconf.ProtoNumTCP:
		return tenant.ProtoTCP
	case ikeconf.ProtoNumUDP:
		return tenant.ProtoUDP
	case ikeconf.ProtoNumICMP:
		return tenant.ProtoICMP
	case ikeconf.ProtoNumICMP6:
		return tenant.ProtoICMP6
	}
	return tenant.ProtoAny
}

// ikeSPPair appends the out and in SPs for one pair of selectors.
// ikeSPPair appends the out SP (unless outSA is "-": none) and the in SP
// for one pair of selectors; "" as an SA name leaves the SP without one.
// n numbers the pairs of one child or policy: the first is NAME/out and
// NAME/in, the next NAME/out.2 and NAME/in.2, and so on.
func ikeSPPair(ps []tenant.Policy, name, vm string, n int, local, remote netip.Prefix, proto uint8, lp, rp ikeconf.PortRange, mode sa.Mode, outSA, inSA string) []tenant.Policy {
	if local.Addr().Is4() != remote.Addr().Is4() {
		return ps
	}
	sfx := ""
	if n > 1 {
		sfx = fmt.Sprintf(".%d", n)
	}
	up := tenantProto(proto)
	if outSA != "-" {
		ps = append(ps, tenant.Policy{Name: name + "/out" + sfx, VM: vm, Src: local, Dst: remote, SrcPort: tenantPort(lp), DstPort: tenantPort(rp),
			ULProto: up, Direction: sa.DirOut, Action: tenant.ActionIPsec, Mode: mode, SAName: outSA})
	}
	return append(ps, tenant.Policy{Name: name + "/in" + sfx, VM: vm, Src: remote, Dst: local, SrcPort: tenantPort(rp), DstPort: tenantPort(lp),
		ULProto: up, Direction: sa.DirIn, Action: tenant.ActionIPsec, Mode: mode, SAName: inSA})
}

// ikeSPsLocked returns the SPs IKE policies give VM vm, in match order
// (see the comment at the top of this file), and the SA of each (nil:
// none yet, its traffic is dropped). The caller holds d.mu.
func (d *Daemon) ikeSPsLocked(vm string) ([]tenant.Policy, []*sa.SA) {
	var pols []*ikeconf.Policy
	for _, k := range sortedKeys(d.ike.policies) {
		if p := d.ike.policies[k]; p.VM == vm {
			pols = append(pols, p)
		}
	}
	if len(pols) == 0 {
		return nil, nil
	}
	var chs []*ikeChild
	for _, ch := range d.ike.children {
		if ch.vm == vm {
			chs = append(chs, ch)
		}
	}
	slices.SortFunc(chs, func(a, b *ikeChild) int { return cmpU64(b.seq, a.seq) }) // newest first
	var ps []tenant.Policy
	for _, ch := range chs {
		base := fmt.Sprintf("ike/%s/%s/%08x", ch.tenant, ch.policy, ch.inSPI)
		out := ch.out
		if ch.pending || ch.retiring {
			out = "-" // inbound only until the engine switches to it, or while it goes
		}
		n := 0
		for _, l := range ch.localTS {
			for _, r := range ch.remoteTS {
				n++
				ps = ikeSPPair(ps, base, vm, n, l, r, ch.proto, ch.localPorts, ch.remotePorts, ch.mode, out, ch.in)
			}
		}
	}
	for _, p := range pols {
		base := fmt.Sprintf("ike/%s/%s/waiting", p.Tenant, p.Name)
		n := 0
		for _, l := range p.LocalSubnets {
			for _, r := range p.RemoteSubnets {
				n++
				ps = ikeSPPair(ps, base, vm, n, l, r, p.Protocol, p.LocalPorts, p.RemotePorts, p.Mode, "", "")
			}
		}
	}
	sas := make([]*sa.SA, len(ps))
	for i := range ps {
		if ps[i].SAName != "" {
			sas[i] = d.db.Get(ps[i].SAName)
		}
	}
	return ps, sas
}

// IKESPs returns the SPs derived from IKE policies, grouped by VM (sorted
// by name), each VM's in match order. They are matched before the VM's
// own SPs. An SP with no SA drops its traffic (IKE has not installed an
// SA for it yet).
func (d *Daemon) IKESPs() []SPInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []SPInfo
	for _, vm := range sortedKeys(d.vms) {
		ps, sas := d.ikeSPsLocked(vm)
		for i, p := range ps {
			out = append(out, SPInfo{Policy: p, SAMissing: sas[i] == nil})
		}
	}
	return out
}

// ikeIPsecSAsLocked returns a show-ipsecsa row per installed Child SA of
// the tenant (all if ""), oldest first; the engine's state of a child
// (REKEYING, …) replaces INSTALLED.
func (d *Daemon) ikeIPsecSAsLocked(tenantName string, engineState map[sa.Key]string) []IPsecSA {
	var chs []*ikeChild
	for _, ch := range d.ike.children {
		if tenantName == "" || ch.tenant == tenantName {
			chs = append(chs, ch)
		}
	}
	slices.SortFunc(chs, func(a, b *ikeChild) int { return cmpU64(a.seq, b.seq) })
	out := make([]IPsecSA, 0, len(chs))
	for _, ch := range chs {
		r := IPsecSA{Tenant: ch.tenant, VM: ch.vm, SA: ch.in, Underlay: ch.vm == "", Policies: []string{ch.policy}, IKEPolicy: ch.policy,
			Local: ch.local, Remote: ch.remote, InboundSPI: ch.inSPI, OutboundSPI: ch.outSPI, State: "INSTALLED"}
		in, out2 := d.db.Get(ch.in), d.db.Get(ch.out)
		if !r.peerOf(out2) {
			r.peerOf(in)
		}
		switch {
		case in == nil || out2 == nil || in.Expired() || out2.Expired():
			r.State = "EXPIRED"
		case !d.enabled:
			r.State = "DISABLED"
		case engineState[sa.Key{Scope: ch.scope, SPI: ch.inSPI}] != "":
			r.State = engineState[sa.Key{Scope: ch.scope, SPI: ch.inSPI}]
		}
		out = append(out, r)
	}
	return out
}

// IKESA is one IKE SA as the engine reports it: a row of `vifsec
// show-ikesa` (ONTAP `security ipsec show-ikesa`).
type IKESA struct {
	Tenant, Policy, VM         string
	Local, Remote              netip.AddrPort
	InitiatorSPI, ResponderSPI uint64
	Initiator                  bool   // we started it
	State                      string // CONNECTING, ESTABLISHED, REKEYING, REKEYED, DELETING
	Suite                      string // e.g. aes256gcm16-prfsha384-curve25519
	KeyExchanges               string // e.g. curve25519+mlkem768
	PPK                        bool   // keys mixed with a post-quantum preshared key
	LocalID, RemoteID          string
	NAT                        bool // a NAT was detected: IKE on 4500, ESP in UDP
	Established                time.Time
	Children                   int
	// ChildError says why the policy's Child SA is missing on this IKE
	// SA: the peer refused it (e.g. TS_UNACCEPTABLE); "" when it is up.
	// The IKE SA stands, and an initiating policy retries the Child SA
	// with CREATE_CHILD_SA.
	ChildError string
}

// IKEReport is what the IKE engine reports: its IKE SAs, and the state of
// each Child SA (REKEYING, …) by its inbound SA's key.
type IKEReport struct {
	IKESAs     []IKESA
	ChildState map[sa.Key]string
}

// SetIKEReport installs the IKE engine's report; IKESAs and IPsecSAs then
// answer from it. f is called without any Daemon lock held.
func (d *Daemon) SetIKEReport(f func() IKEReport) { d.ikeReport.Store(&f) }

func (d *Daemon) readIKEReport() IKEReport {
	if f := d.ikeReport.Load(); f != nil {
		return (*f)()
	}
	return IKEReport{}
}

// IKEStats are the IKE engine's exhaustion limits at one moment: how much
// of each it uses, and how often each refused a datagram.
type IKEStats struct {
	HalfOpen         int               // half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not done)
	HalfOpenByTenant map[string]int    // charged to each tenant whose policies could answer them
	ReassemblyBytes  int               // memory held by IKE fragment reassembly
	CookiesSent      uint64            // IKE_SA_INIT requests answered with a COOKIE
	Drops            map[string]uint64 // by limit (e.g. half_open_per_source); every limit present

	// Failures counts failed IKE and Child SA negotiations by reason
	// (e.g. no_proposal_chosen); every reason present.
	Failures                             map[string]uint64
	IKERekeys, ChildRekeys               uint64 // rekeys done
	IKERekeyFailures, ChildRekeyFailures uint64 // rekeys we started that failed
	DPDFailures                          uint64 // IKE SAs found dead by a liveness check
}

// SetIKEStats installs the IKE engine's limit counters for IKEStats. f is
// called without any Daemon lock held.
func (d *Daemon) SetIKEStats(f func() IKEStats) { d.ikeStats.Store(&f) }

// IKEStats returns the IKE engine's limit counters (zero without an
// engine).
func (d *Daemon) IKEStats() IKEStats {
	if f := d.ikeStats.Load(); f != nil {
		return (*f)()
	}
	return IKEStats{}
}

// IKESAs returns the IKE SAs of the tenant named tenantName, or of all
// tenants if it is "", as the engine reports them (none without an
// engine). Equivalent to: `vifsec show-ikesa [--tenant NAME]`.
func (d *Daemon) IKESAs(tenantName string) ([]IKESA, error) {
	rep := d.readIKEReport() // before d.mu: the engine's lock is taken inside
	d.mu.RLock()
	defer d.mu.RUnlock()
	if tenantName != "" {
		if _, ok := d.tenants[tenantName]; !ok {
			return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
		}
	}
	out := []IKESA{}
	for _, s := range rep.IKESAs {
		if tenantName == "" || s.Tenant == tenantName {
			out = append(out, s)
		}
	}
	return out, nil
}

// SetIKEEvents makes Run hand every SA lifetime event (sa.DB.Events) to
// h first; h reports whether the SA is IKE's (it rekeys or deletes it),
// else Run logs the event as for a manual SA. h must not block.
func (d *Daemon) SetIKEEvents(h func(sa.Event) bool) { d.ikeEvents.Store(&h) }
