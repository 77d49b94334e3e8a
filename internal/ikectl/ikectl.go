package ikectl

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/sa/ike/suite"
)

// Config configures a Controller. A nil *Config means defaults (which
// send nothing: useful only in tests).
type Config struct {
	Logger *slog.Logger
	// Send transmits one IKE datagram: for a zero Scope from the underlay
	// address, else on the VM's behalf. Port 4500 on either side means the
	// non-ESP marker is the sender's to add. It must not block long.
	Send func(ike.Packet)
	// Engine tunes the engine (timers, clock, randomness, ports) in
	// tests; its Logger and callbacks are replaced.
	Engine *ike.Config
}

// Controller runs one ike.Engine for a Daemon. Its methods are safe for
// concurrent use.
type Controller struct {
	d   *daemon.Daemon
	e   *ike.Engine
	log *slog.Logger

	mu      sync.Mutex
	last    []ike.Policy // last given to SetPolicies
	waiting map[string]string
}

// New returns a Controller for d and registers it with d: d's lifetime
// events go to the engine first, and show-ikesa/show-ipsecsa read the
// engine's state. Call Run to make it work.
func New(d *daemon.Daemon, cfg *Config) *Controller {
	if cfg == nil {
		cfg = &Config{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{d: d, log: log, waiting: map[string]string{}}
	var ec ike.Config
	if cfg.Engine != nil {
		ec = *cfg.Engine
	}
	ec.Logger = log
	send := cfg.Send
	ec.Send = func(p ike.Packet) {
		if send != nil {
			send(p)
		}
	}
	ec.Install = c.install
	ec.Switch = c.switchTo
	ec.Remove = c.remove
	ec.AllocSPI = d.AllocIKESPI
	ec.FreeSPI = d.FreeIKESPI
	ec.Rebind = c.rebind
	ec.InboundPackets = func(cs *ike.ChildSA) uint64 { return d.IKEInboundPackets(cs.Scope, cs.In.SPI) }
	c.e = ike.New(&ec)
	d.SetIKEEvents(c.e.HandleEvent)
	d.SetIKEReport(c.report)
	d.SetIKEStats(c.stats)
	d.SetIKERekey(c.rekey)
	return c
}

// Engine returns the engine (for tests and reports).
func (c *Controller) Engine() *ike.Engine { return c.e }

// Input processes one received IKE datagram (Data without the non-ESP
// marker). It runs the engine's work (DH, signatures) on the caller's
// goroutine.
func (c *Controller) Input(p ike.Packet) { c.e.Input(p) }

// Run keeps the engine's policies in line with the daemon's and runs the
// engine's timers, until ctx is done. On return the engine has been given
// no policies (its SAs are deleted, and the peers told when the network
// still carries it).
func (c *Controller) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { c.e.Run(ctx); close(done) }()
	for {
		_, changed := c.d.Watch()
		c.Sync()
		select {
		case <-ctx.Done():
			c.setPolicies(nil, nil)
			<-done
			return
		case <-changed:
		}
	}
}

// Sync gives the engine the daemon's current policies. Run calls it on
// every change; tests may call it directly.
func (c *Controller) Sync() {
	cfg := c.d.IKEConfig()
	var ps []ike.Policy
	if cfg.Enabled {
		ps = c.policies(cfg)
	}
	c.setPolicies(ps, cfg.Policies)
}

// setPolicies gives the engine ps; all is every policy of the daemon,
// running or waiting.
func (c *Controller) setPolicies(ps []ike.Policy, all []daemon.IKEPolicyConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps == nil {
		ps = []ike.Policy{}
	}
	if c.last != nil && reflect.DeepEqual(c.last, ps) {
		return
	}
	// A VM policy that still exists but whose VM is no longer here as it
	// was (moved to another host, detached, re-attached with another MAC
	// or VLAN) loses its SAs without a Delete: nothing may be sent from
	// the VM's address here any more. The peer learns it from the
	// INITIAL_CONTACT of the VM's new host, or by DPD.
	var left []string
	for _, old := range c.last {
		if old.VM == "" {
			continue
		}
		for _, pc := range all {
			if pc.Policy.Tenant == old.Tenant && pc.Policy.Name == old.Name && pc.Scope != old.Scope {
				left = append(left, old.Tenant+"/"+old.Name)
			}
		}
	}
	if len(left) > 0 {
		n := c.e.DropPolicies(left...)
		c.log.Info("IKE SAs of policies whose VM left dropped without a Delete", "policies", left, "ike_sas", n)
	}
	if err := c.e.SetPolicies(ps); err != nil {
		// Each policy was validated on its own (policies): a broken
		// invariant, but not worth a crash of the daemon.
		c.log.Error("IKE engine refused the policies; keeping the previous ones", "err", err)
		return
	}
	c.last = ps
}

// policies builds the engine's policies; one that cannot run yet is left
// out and logged once per reason.
func (c *Controller) policies(cfg daemon.IKEConfig) []ike.Policy {
	var out []ike.Policy
	waiting := map[string]string{}
	for _, pc := range cfg.Policies {
		p, why := enginePolicy(pc)
		if why == "" {
			if err := p.Validate(); err != nil {
				why = err.Error()
			}
		}
		key := pc.Policy.Tenant + "/" + pc.Policy.Name
		if why != "" {
			clear(p.PSK)
			clear(p.PPK)
			waiting[key] = why
			if c.waiting[key] != why {
				c.log.Warn("IKE policy waits", "tenant", pc.Policy.Tenant, "policy", pc.Policy.Name, "reason", why)
			}
			continue
		}
		out = append(out, p)
	}
	c.mu.Lock()
	c.waiting = waiting
	c.mu.Unlock()
	return out
}

// enginePolicy converts one daemon policy; why says why it cannot run.
func enginePolicy(pc daemon.IKEPolicyConfig) (p ike.Policy, why string) {
	d := pc.Policy
	p = ike.Policy{
		Tenant: d.Tenant, Name: d.Name, VM: d.VM, Scope: pc.Scope,
		Local: pc.Local, Remote: d.RemoteAddress,
		LocalTS: d.LocalSubnets, RemoteTS: d.RemoteSubnets, Protocol: d.Protocol,
		LocalPorts: ports(d.LocalPorts), RemotePorts: ports(d.RemotePorts), Mode: d.Mode,
		LocalID: d.LocalIdentity, RemoteID: d.RemoteIdentity,
		DPD: d.DPDInterval, DPDClear: d.EffectiveDPDAction() == ikeconf.DPDClear,
		PPK: d.PPK, PPKID: d.PPKID, PPKRequired: d.PPKRequired, ForceEncap: d.ForceEncap,
	}
	p.IKELifetime, p.ChildLifetime = d.Lifetimes()
	if d.RemoteIdentity == ikeconf.AnyIdentity {
		p.RemoteID, p.AnyRemoteID = "", true
	}
	switch d.Auth {
	case ikeconf.AuthPSK:
		p.PSK = d.PSK
	case ikeconf.AuthPKI:
		p.Cert, p.Chain, p.Key, p.Roots, p.CRLs = pc.Cert, pc.Chain, pc.Key, pc.Roots, pc.CRLs
		if len(p.Roots) == 0 {
			return p, fmt.Sprintf("tenant %s has no IPsec CA (vifsec ca-certificate add)", d.Tenant)
		}
	}
	for _, s := range d.IKEProposals {
		x, err := suite.ParseIKEProposal(s)
		if err != nil {
			return p, "--ike-proposals: " + err.Error()
		}
		p.IKE = append(p.IKE, x...)
	}
	for _, s := range d.ESPProposals {
		x, err := suite.ParseESPProposal(s)
		if err != nil {
			return p, "--esp-proposals: " + err.Error()
		}
		p.ESP = append(p.ESP, x...)
	}
	if !p.Local.IsValid() {
		if d.VM == "" {
			return p, "no underlay address to speak IKE from (vifsec uplink set --overlay vxlan --vxlan-local ADDR)"
		}
		return p, fmt.Sprintf("no address of VM %s to speak IKE from", d.VM)
	}
	if p.Remote.IsValid() && p.Remote.Is4() != p.Local.Is4() {
		return p, fmt.Sprintf("--remote-address %v and the local address %v are of different families", p.Remote, p.Local)
	}
	return p, ""
}

func ports(r ikeconf.PortRange) [2]uint16 {
	if r.IsAny() {
		return [2]uint16{}
	}
	return [2]uint16{r.First, r.Last}
}

// install is the engine's Install: both SAs in one change, the outbound
// one carrying traffic only after switchTo.
func (c *Controller) install(cs *ike.ChildSA) error {
	err := c.d.InstallIKEChild(daemon.IKEChild{
		Tenant: cs.Tenant, Policy: cs.Policy, In: cs.In, Out: cs.Out,
		LocalTS: cs.LocalTS, RemoteTS: cs.RemoteTS, Protocol: cs.Protocol,
		LocalPorts: portRange(cs.LocalPorts), RemotePorts: portRange(cs.RemotePorts),
		Pending: true,
	})
	if err != nil {
		c.log.Warn("IKE child SA not installed", "tenant", cs.Tenant, "policy", cs.Policy, "in_spi", fmt.Sprintf("0x%08x", cs.In.SPI), "err", err)
	}
	return err
}

func portRange(p [2]uint16) ikeconf.PortRange {
	if p == [2]uint16{} || p == [2]uint16{0, 65535} {
		return ikeconf.AnyPorts
	}
	return ikeconf.PortRange{First: p[0], Last: p[1]}
}

func (c *Controller) switchTo(cs *ike.ChildSA) {
	if err := c.d.SwitchIKEChild(cs.Scope, cs.In.SPI); err != nil {
		c.log.Debug("IKE switch of a child SA that is gone", "tenant", cs.Tenant, "policy", cs.Policy, "err", err)
	}
}

// rebind is the engine's Rebind: the Child SA's SAs follow the peer to
// its new endpoint.
func (c *Controller) rebind(cs *ike.ChildSA) {
	if cs.Out.Encap == nil {
		return
	}
	to := netip.AddrPortFrom(cs.Out.Dst, cs.Out.Encap.DstPort)
	if err := c.d.RebindIKEChild(cs.In.Name, cs.Out.Name, to); err != nil {
		c.log.Warn("IKE child SA not moved to its peer's new endpoint", "tenant", cs.Tenant, "policy", cs.Policy, "to", to.String(), "err", err)
	}
}

func (c *Controller) remove(cs *ike.ChildSA) {
	if err := c.d.RemoveIKEChild(cs.Scope, cs.In.SPI); err != nil {
		c.log.Warn("IKE child SA not removed", "tenant", cs.Tenant, "policy", cs.Policy, "err", err)
	}
}

// rekey is the daemon's `policy rekey`: the policy's Child SAs, or with
// ikeSA its IKE SAs, now.
func (c *Controller) rekey(tenant, name string, ikeSA bool) int {
	if ikeSA {
		return c.e.RekeyIKE(tenant, name)
	}
	return c.e.RekeyChild(tenant, name)
}

// report is the daemon's view of the engine (show-ikesa, show-ipsecsa).
func (c *Controller) report() daemon.IKEReport {
	r := daemon.IKEReport{ChildState: map[sa.Key]string{}}
	for _, s := range c.e.IKESAs() {
		r.IKESAs = append(r.IKESAs, daemon.IKESA{
			Tenant: s.Tenant, Policy: s.Policy, VM: s.VM, Local: s.Local, Remote: s.Remote,
			InitiatorSPI: s.SPIi, ResponderSPI: s.SPIr, Initiator: s.Initiator, State: s.State, Suite: s.Suite,
			KeyExchanges: s.KeyExchanges, PPK: s.PPK,
			LocalID: s.LocalID, RemoteID: s.RemoteID, NAT: s.NAT, Established: s.Established, Children: s.Children,
			ChildError: s.ChildError,
		})
	}
	for _, ch := range c.e.ChildSAs() {
		r.ChildState[sa.Key{Scope: ch.Scope, SPI: ch.InSPI}] = ch.State
	}
	return r
}

// stats is the daemon's view of the engine's limits (metrics).
func (c *Controller) stats() daemon.IKEStats {
	st := c.e.Stats()
	out := daemon.IKEStats{
		HalfOpen: st.HalfOpen, HalfOpenByTenant: st.HalfOpenByTenant,
		ReassemblyBytes: st.ReassemblyBytes, CookiesSent: st.CookiesSent,
		Drops: map[string]uint64{}, Failures: map[string]uint64{},
		IKERekeys: st.IKERekeys, ChildRekeys: st.ChildRekeys,
		IKERekeyFailures: st.IKERekeyFailures, ChildRekeyFailures: st.ChildRekeyFailures,
		DPDFailures: st.DPDFailures,
	}
	for l := ike.Limit(1); l < ike.NumLimits; l++ {
		out.Drops[l.String()] = st.Drops[l]
	}
	for f := ike.Failure(1); f < ike.NumFailures; f++ {
		out.Failures[f.String()] = st.Failures[f]
	}
	return out
}
