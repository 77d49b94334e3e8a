package libvirt

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/vifsec/vifsec/tenant"
)

// Host is the daemon as reconciliation sees it; *daemon.Daemon is one.
type Host interface {
	VMs() []tenant.VM
	AttachVM(tenant.VM) error
	RebindVM(tenant.VM) (changed bool, err error)
	DetachVM(name string) error
}

// Reconciler compares the domains libvirt runs with the VMs attached for
// libvirt domains (Origin "libvirt:UUID") and closes the gap: interfaces
// of running domains with vifsec metadata that are not attached (or are
// attached on another device) are attached; VMs of domains that no longer
// run, or of interfaces a running domain no longer protects, are detached.
// It is the backstop for hook calls that were missed (vifsecd was down
// when a domain started or stopped) and never blocks on libvirt: an
// unreachable libvirt is an error of the pass, retried at the next.
//
// VMs attached by operators (no origin) are never touched.
type Reconciler struct {
	Host Host
	// List returns the running domains and their live XML.
	List func(ctx context.Context) ([]LiveDomain, error)
	// DevExists reports whether a host device exists. A VM of a domain
	// that is not running is detached only once its device is gone, so a
	// domain that starts during a pass (and whose hook attaches it) is
	// not detached on stale information.
	DevExists func(dev, netns string) bool
	// SysFS is passed to Plan ("" means /sys).
	SysFS string
	// Log receives one line per change, and each distinct problem once
	// (until it goes away); nil discards.
	Log *slog.Logger

	logged map[string]bool
	down   string
}

// Report is what one pass did.
type Report struct {
	// Attached, Moved and Detached name VMs; Kept names VMs of stopped
	// domains that could not be detached (they have SAs or SPs; their
	// device is gone, so the data path does not serve them).
	Attached, Moved, Detached, Kept []string
	// Errors are per domain or per VM; the rest of the pass went on.
	Errors []error
}

// Once runs one pass. It returns an error only if libvirt could not be
// listed; then it changed nothing.
func (r *Reconciler) Once(ctx context.Context) (Report, error) {
	var rep Report
	before := libvirtVMs(r.Host.VMs())
	live, err := r.List(ctx)
	if err != nil {
		return rep, err
	}
	all := map[string]tenant.VM{}
	for _, v := range r.Host.VMs() {
		all[v.Name] = v
	}
	active := map[string]bool{}
	hold := map[string]bool{} // running domains whose VMs are left as they are
	wanted := map[string]bool{}
	for _, ld := range live {
		uuid := ld.Ref.UUIDString()
		active[uuid] = true
		if !HasMetadata(ld.XML) {
			continue
		}
		d, err := ParseDomain(ld.XML)
		if d != nil && d.UUID != "" {
			active[d.UUID] = true
		}
		if err == nil {
			var bs []Binding
			bs, err = d.Plan(&PlanOptions{NeedDev: true, SysFS: r.SysFS})
			for _, b := range bs {
				wanted[b.VM.Name] = true
				r.apply(b.VM, all, &rep)
			}
		}
		if err != nil {
			hold[uuid] = true
			if d != nil && d.UUID != "" {
				hold[d.UUID] = true
			}
			rep.Errors = append(rep.Errors, fmt.Errorf("domain %s: %w", ld.Ref.Name, err))
		}
	}

	current := libvirtVMs(r.Host.VMs())
	for _, name := range sortedNames(before) {
		old := before[name]
		uuid, _ := DomainOf(old.Origin)
		if wanted[name] || hold[uuid] {
			continue
		}
		cur, ok := current[name]
		if !ok || cur.Origin != old.Origin {
			continue
		}
		if !active[uuid] {
			// The domain may have started since it was listed: its hook
			// then moved the VM to a new device or, for a device of
			// fixed name, the device exists again.
			if cur.Dev != old.Dev || cur.Netns != old.Netns || r.DevExists != nil && r.DevExists(cur.Dev, cur.Netns) {
				continue
			}
		}
		if err := r.Host.DetachVM(name); err != nil {
			rep.Kept = append(rep.Kept, name)
			rep.Errors = append(rep.Errors, fmt.Errorf("VM %s (%s) stays attached: %w", name, old.Origin, err))
			continue
		}
		rep.Detached = append(rep.Detached, name)
	}
	return rep, nil
}

// apply attaches v or moves it to its device, re-attaching it if what
// identifies it changed (the domain's XML now says another VLAN).
func (r *Reconciler) apply(v tenant.VM, all map[string]tenant.VM, rep *Report) {
	c, ok := all[v.Name]
	cur := &c
	if !ok {
		cur = nil
	}
	if cur != nil && cur.Origin == v.Origin && IdentityDiffers(*cur, v) {
		if err := r.Host.DetachVM(v.Name); err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("VM %s: the domain now says tenant %s, mac %s, vlan %d; it cannot be re-attached: %w", v.Name, v.Tenant, v.MAC, v.VLAN, err))
			return
		}
		if err := r.Host.AttachVM(v); err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("VM %s: %w", v.Name, err))
			rep.Detached = append(rep.Detached, v.Name)
			return
		}
		rep.Moved = append(rep.Moved, v.Name)
		return
	}
	changed, err := r.Host.RebindVM(v)
	switch {
	case err != nil:
		rep.Errors = append(rep.Errors, fmt.Errorf("VM %s: %w", v.Name, err))
	case changed && cur == nil:
		rep.Attached = append(rep.Attached, v.Name)
	case changed:
		rep.Moved = append(rep.Moved, v.Name)
	}
}

// IdentityDiffers reports whether want differs from the attached VM cur
// in more than its device: then it must be detached and attached again
// (daemon.RebindVM moves only devices).
func IdentityDiffers(cur, want tenant.VM) bool {
	return cur.Tenant != want.Tenant || cur.MAC != want.MAC || cur.VLAN != want.VLAN ||
		cur.CreateTap != want.CreateTap || !slices.Equal(cur.IPs, want.IPs)
}

// Run runs a pass at once and then every interval until ctx ends. It logs
// what each pass changed; that libvirt cannot be reached is logged once,
// and again when it can.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.pass(ctx, interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Reconciler) pass(ctx context.Context, timeout time.Duration) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := r.Once(pctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if r.down == "" {
			log.Info("libvirt not reachable; VMs of libvirt domains are reconciled when it is", "err", err)
		}
		r.down = err.Error()
		return
	}
	if r.down != "" {
		log.Info("libvirt reachable; reconciling VMs of libvirt domains")
		r.down = ""
	}
	for _, n := range rep.Attached {
		log.Info("libvirt: VM attached for a running domain", "vm", n)
	}
	for _, n := range rep.Moved {
		log.Info("libvirt: VM moved to its domain's device", "vm", n)
	}
	for _, n := range rep.Detached {
		log.Info("libvirt: VM detached, its domain no longer runs it", "vm", n)
	}
	seen := map[string]bool{}
	for _, e := range rep.Errors {
		s := e.Error()
		seen[s] = true
		if !r.logged[s] {
			log.Warn("libvirt: cannot reconcile", "err", s)
		}
	}
	r.logged = seen
}

// libvirtVMs returns the VMs attached for libvirt domains, by name.
func libvirtVMs(vms []tenant.VM) map[string]tenant.VM {
	out := map[string]tenant.VM{}
	for _, v := range vms {
		if _, ok := DomainOf(v.Origin); ok {
			out[v.Name] = v
		}
	}
	return out
}

func sortedNames(m map[string]tenant.VM) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
