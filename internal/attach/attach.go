package attach

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/vif"
)

// Want is one VM the data path should serve: where its VIF is, and the
// rest of what the engine needs (Port is filled in here).
type Want struct {
	Dev, Netns string
	VM         datapath.VM
	// CreateTap: create Dev as a persistent tap when it is missing, and
	// delete it when the VM is no longer wanted.
	CreateTap bool
}

// UplinkWant is where the uplink is; nil means none.
type UplinkWant struct{ Dev, Netns string }

// Opener opens a port on an interface with options o; vif.OpenPacketWith
// in production. Every port is opened with o.VnetHdr (frames carry
// virtio-net headers, so guests may keep TSO/GSO and checksum offload,
// and the uplink's GRO'd frames arrive described); the uplink alone with
// o.Qdisc (the kernel segments the UDP GSO trains the device cannot).
// o.Queues is how many queues (one data-path worker each) to open; an
// opener that cannot open several (a tap, a test port) opens one. It
// returns the interface's MTU too (0 if unknown).
type Opener func(dev, netns string, o vif.PacketOptions) (p vif.Port, mtu int, err error)

// guardKey names a VIF that carries vifsec's guard (vif.InstallGuard).
type guardKey struct{ dev, netns string }

type port struct {
	dev, netns string
	p          vif.Port
	dead       atomic.Bool
}

// Attacher reconciles. Its methods are safe for concurrent use.
type Attacher struct {
	e    *datapath.Engine
	open Opener
	log  *slog.Logger
	// queues for the uplink and for each VIF (SetQueues; 1 until then).
	upQueues, vifQueues atomic.Int32

	mu      sync.Mutex
	wants   []Want
	uplink  *UplinkWant
	ports   map[string]*port // by VM name
	up      *port
	lastErr map[string]string
	watched map[string]bool
	kick    chan struct{}
	taps    map[string]*vif.TapDevice // by VM name: taps this attacher created
	guards  map[guardKey]int          // guarded VIFs: their ifindex

	// Detached counts VIFs that went away under a running VM binding.
	Detached atomic.Uint64
	// Reattached counts VIFs opened again after going away.
	Reattached atomic.Uint64
}

// New returns an attacher driving e. It sets e.OnPortDown.
func New(e *datapath.Engine, open Opener, log *slog.Logger) *Attacher {
	if log == nil {
		log = slog.Default()
	}
	a := &Attacher{e: e, open: open, log: log, ports: map[string]*port{}, lastErr: map[string]string{},
		watched: map[string]bool{}, kick: make(chan struct{}, 1), taps: map[string]*vif.TapDevice{}, guards: map[guardKey]int{}}
	e.OnPortDown = a.portDown
	a.SetQueues(1)
	return a
}

// SetQueues sets how many queues, one worker each, ports opened from now
// on get: the uplink k, each VIF min(k, MaxVIFQueues). Ports already open
// keep theirs.
func (a *Attacher) SetQueues(k int) {
	k = max(k, 1)
	a.upQueues.Store(int32(k))
	a.vifQueues.Store(int32(min(k, MaxVIFQueues)))
}

// MaxVIFQueues bounds a VIF's queues. One: a VM's outbound SAs are its
// own, so with one worker per VIF each SA is encrypted by one worker and
// its packets leave in sequence-number order. With two, a VM's flows on
// both queues would share an SA and its sequence numbers would leave
// interleaved by up to a write (8 frames, or the ~45 segments of a
// super-frame), which a peer with a smaller replay window (strongSwan's
// default is 32) drops. Hosts scale across VMs, each on its own worker,
// and inbound across the uplink's queues.
const MaxVIFQueues = 1

func (a *Attacher) portDown(p vif.Port, err error) {
	a.mu.Lock()
	for _, pt := range a.ports {
		if pt.p == p {
			pt.dead.Store(true)
		}
	}
	if a.up != nil && a.up.p == p {
		a.up.dead.Store(true)
	}
	a.mu.Unlock()
	a.Kick()
}

// guard makes sure w's interface carries the guard: checked if this
// attacher put it there, installed (or taken over from a vifsec that
// stopped) otherwise. The caller holds a.mu.
func (a *Attacher) guard(w Want) error {
	k := guardKey{w.Dev, w.Netns}
	old, had := a.guards[k]
	if had {
		got, err := vif.CheckGuard(w.Dev, w.Netns)
		if err == nil && got == old {
			return nil
		}
		a.log.Warn("VIF guard not in force; installing it again", "dev", w.Dev, "netns", w.Netns, "err", err)
	}
	index, err := vif.InstallGuard(w.Dev, w.Netns)
	if err != nil {
		return err
	}
	if !had {
		a.log.Info("VIF guard installed: the kernel forwards none of its frames", "dev", w.Dev, "netns", w.Netns)
	}
	a.guards[k] = index
	return nil
}

// setErr records why VM name's interface is not attached, logging it
// when the reason changes. The caller holds a.mu.
func (a *Attacher) setErr(name string, w Want, err error) {
	if a.lastErr[name] != err.Error() {
		if errors.Is(err, vif.ErrKindRefused) {
			a.log.Warn("VIF refused", "vm", name, "dev", w.Dev, "netns", w.Netns, "err", err)
		} else {
			a.log.Info("VIF not available; will retry", "vm", name, "dev", w.Dev, "err", err)
		}
	}
	a.lastErr[name] = err.Error()
}

// Kick asks Run to reconcile soon.
func (a *Attacher) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Set replaces the desired state and reconciles at once.
func (a *Attacher) Set(wants []Want, uplink *UplinkWant) {
	a.mu.Lock()
	a.wants = wants
	a.uplink = uplink
	a.mu.Unlock()
	a.reconcile()
}

// Status reports, per VM name, "" when its VIF is attached or why not.
func (a *Attacher) Status() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]string{}
	for _, w := range a.wants {
		if pt := a.ports[w.VM.Name]; pt != nil && !pt.dead.Load() {
			out[w.VM.Name] = ""
		} else if e := a.lastErr[w.VM.Name]; e != "" {
			out[w.VM.Name] = e
		} else {
			out[w.VM.Name] = "interface down or missing"
		}
	}
	return out
}

// Run reconciles on kicks, link events in every namespace in use, and
// every few seconds as a backstop, until ctx ends. Then it closes the engine.
func (a *Attacher) Run(ctx context.Context) {
	events := make(chan vif.LinkEvent, 64)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		a.watchNew(ctx, events)
		select {
		case <-ctx.Done():
			a.e.Close()
			return
		case <-a.kick:
		case <-events:
			// Let a burst of events settle into one reconcile.
			time.Sleep(50 * time.Millisecond)
			for len(events) > 0 {
				<-events
			}
		case <-tick.C:
		}
		a.reconcile()
	}
}

// watchNew subscribes to link events of namespaces not yet watched.
func (a *Attacher) watchNew(ctx context.Context, events chan<- vif.LinkEvent) {
	a.mu.Lock()
	var nss []string
	for _, w := range a.wants {
		nss = append(nss, w.Netns)
	}
	if a.uplink != nil {
		nss = append(nss, a.uplink.Netns)
	}
	var todo []string
	for _, ns := range nss {
		if !a.watched[ns] {
			a.watched[ns] = true
			todo = append(todo, ns)
		}
	}
	a.mu.Unlock()
	for _, ns := range todo {
		if err := vif.WatchLinks(ctx, ns, events); err != nil {
			a.log.Warn("link watch failed; relying on periodic checks", "netns", ns, "err", err)
		}
	}
}

// reconcile opens what is wanted and missing, closes what is dead or no
// longer wanted, and publishes the result to the engine.
func (a *Attacher) reconcile() {
	a.mu.Lock()
	defer a.mu.Unlock()
	wanted := map[string]bool{}
	var vms []datapath.VM
	for _, w := range a.wants {
		name := w.VM.Name
		wanted[name] = true
		pt := a.ports[name]
		if pt != nil && (pt.dead.Load() || pt.dev != w.Dev || pt.netns != w.Netns) {
			if pt.dead.Load() {
				a.Detached.Add(1)
				a.lastErr[name] = "interface went away"
				a.log.Info("VIF gone; detached", "vm", name, "dev", pt.dev)
			}
			pt.p.Close()
			delete(a.ports, name)
			pt = nil
		}
		if pt == nil && w.CreateTap && a.taps[name] == nil {
			if _, err := vif.Describe(w.Dev, w.Netns); err != nil {
				t, err := vif.CreateTap(w.Dev, w.Netns)
				if err == nil {
					// The tap is persistent: let the hypervisor attach.
					err = t.ReleaseQueue()
					a.taps[name] = t
					a.log.Info("tap created for VM", "vm", name, "dev", w.Dev, "netns", w.Netns)
				}
				if err != nil {
					a.lastErr[name] = "create tap: " + err.Error()
					continue
				}
			}
		}
		if pt != nil {
			// The guard may have been taken off (tc filter del) or the
			// device replaced under the same name: put it back, or let go.
			if err := a.guard(w); err != nil {
				a.log.Warn("VIF guard gone and not restored; detached", "vm", name, "dev", w.Dev, "err", err)
				a.lastErr[name] = err.Error()
				pt.p.Close()
				delete(a.ports, name)
				continue
			}
		}
		if pt == nil {
			info, err := vif.Describe(w.Dev, w.Netns)
			if err != nil {
				a.setErr(name, w, err)
				continue
			}
			if err := vif.CheckKind(info); err != nil {
				a.setErr(name, w, err)
				continue
			}
			// The guard goes on before the port opens: from then on the
			// kernel forwards none of the guest's frames, whether vifsec
			// reads them yet or not.
			if err := a.guard(w); err != nil {
				a.setErr(name, w, err)
				continue
			}
			// An interface that is down is not attached: its port would
			// read nothing and drop what it is given until the link is
			// up. Wait for that (a link event triggers the next
			// reconcile).
			if !info.AdminUp {
				a.lastErr[name] = "interface is down"
				continue
			}
			p, _, err := a.open(w.Dev, w.Netns, vif.PacketOptions{VnetHdr: true, Queues: int(a.vifQueues.Load())})
			if err != nil {
				a.setErr(name, w, err)
				continue
			}
			if _, was := a.lastErr[name]; was {
				a.Reattached.Add(1)
			}
			delete(a.lastErr, name)
			pt = &port{dev: w.Dev, netns: w.Netns, p: p}
			a.ports[name] = pt
			a.log.Info("VIF attached", "vm", name, "dev", w.Dev, "netns", w.Netns)
		}
		v := w.VM
		v.Port = pt.p
		v.VnetHdr = true
		vms = append(vms, v)
	}
	for name := range a.ports {
		if !wanted[name] {
			delete(a.ports, name) // the engine closes ports that leave its table
		}
	}

	for name := range a.lastErr {
		if !wanted[name] {
			delete(a.lastErr, name)
		}
	}
	a.e.Update(vms)
	// Guards of interfaces no VM wants any more come off.
	inUse := map[guardKey]bool{}
	for _, w := range a.wants {
		inUse[guardKey{w.Dev, w.Netns}] = true
	}
	for k, index := range a.guards {
		if inUse[k] {
			continue
		}
		if err := vif.RemoveGuard(k.dev, k.netns, index); err != nil {
			a.log.Warn("VIF guard not removed; the interface stays cut off", "dev", k.dev, "netns", k.netns, "err", err)
			continue
		}
		delete(a.guards, k)
		a.log.Info("VIF guard removed", "dev", k.dev, "netns", k.netns)
	}
	// Taps of VMs no longer wanted go after the engine let go of them.
	for name, t := range a.taps {
		if !wanted[name] {
			if err := t.Close(); err != nil {
				a.log.Warn("tap not deleted", "vm", name, "dev", t.Name(), "err", err)
			}
			delete(a.taps, name)
		}
	}

	// Uplink.
	up := a.uplink
	if a.up != nil && (up == nil || a.up.dead.Load() || a.up.dev != up.Dev || a.up.netns != up.Netns) {
		a.e.SetUplink(nil, 0) // closes it
		a.up = nil
	}
	if up != nil && a.up == nil {
		if info, err := vif.Describe(up.Dev, up.Netns); err == nil && !info.AdminUp {
			a.lastErr["\x00uplink"] = "interface is down"
			return
		}
		p, mtu, err := a.open(up.Dev, up.Netns, vif.PacketOptions{VnetHdr: true, Queues: int(a.upQueues.Load()), Qdisc: true})
		if err != nil {
			if a.lastErr["\x00uplink"] != err.Error() {
				a.log.Warn("uplink not available; will retry", "dev", up.Dev, "err", err)
			}
			a.lastErr["\x00uplink"] = err.Error()
			return
		}
		delete(a.lastErr, "\x00uplink")
		a.up = &port{dev: up.Dev, netns: up.Netns, p: p}
		// UDP GSO trains leave whole where the device segments them
		// (tx-udp-segmentation on) and are cut by the kernel in software,
		// after the qdisc, where it does not: either way one write carries
		// a train.
		udpGSO := "software"
		if fs, err := vif.Features(up.Dev, up.Netns); err == nil {
			if f, ok := fs.Lookup("tx-udp-segmentation"); ok && f.Active {
				udpGSO = "device"
			}
		}
		if !a.e.UDPGSO() {
			udpGSO = "off (--udp-gso=false)"
		}
		a.e.SetUplinkWith(p, datapath.UplinkOptions{MTU: mtu, VnetHdr: true, UDPGSO: true})
		a.log.Info("uplink attached", "dev", up.Dev, "netns", up.Netns, "mtu", mtu, "udp_gso", udpGSO)
	}
}
