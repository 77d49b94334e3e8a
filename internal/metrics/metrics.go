// Package metrics exports vifsecd's counters in the Prometheus text format.
//
// It owns the collector that, at scrape time, reads the atomic counters the
// data path updates (per VM and per SA) and the daemon's state gauges. It
// must not add anything to the data path: no locks, no allocations, no
// registration per packet — the data path only does atomic adds on
// counters it already has, and this package reads them when scraped.
package metrics

import (
	"cmp"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"maps"
	"runtime"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
)

// Source is what the collector reads; *daemon.Daemon implements it.
type Source interface {
	Snapshot() *daemon.Snapshot
	SAs() []daemon.SAInfo
	UplinkCounters() daemon.UplinkCounters
	IKEStats() daemon.IKEStats
	UplinkState() daemon.UplinkState
	VIFStatus() map[string]string
	IKEConfig() daemon.IKEConfig
	IKESAs(tenant string) ([]daemon.IKESA, error)
	IPsecSAs(tenant string) ([]daemon.IPsecSA, error)
}

var (
	descBuild     = prometheus.NewDesc("vifsec_build_info", "vifsecd build information (always 1).", []string{"version", "goversion"}, nil)
	descEnabled   = prometheus.NewDesc("vifsec_ipsec_enabled", "Global IPsec switch (vifsec config show): 1 enabled, 0 disabled.", nil, nil)
	descGen       = prometheus.NewDesc("vifsec_state_generation", "Number of accepted configuration changes since start, plus one.", nil, nil)
	descObjects   = prometheus.NewDesc("vifsec_objects", "Configured objects by kind.", []string{"kind"}, nil)
	descVMPackets = prometheus.NewDesc("vifsec_vm_packets_total", "Packets of a VM, by direction seen from the VM (out: sent by it).", []string{"tenant", "vm", "direction"}, nil)
	descVMBytes   = prometheus.NewDesc("vifsec_vm_bytes_total", "Bytes of a VM, by direction seen from the VM.", []string{"tenant", "vm", "direction"}, nil)
	descVMDrops   = prometheus.NewDesc("vifsec_vm_drops_total", "Packets of a VM dropped, by reason.", []string{"tenant", "vm", "reason"}, nil)
	// SA series are labelled by identity, not SPI: a manual SA by its
	// name, the Child SAs of an IKE policy by "ike/POLICY" (successive
	// children of one policy, rekeyed or overlapping during a
	// make-before-break rekey, are one series, summed). The SPIs are in
	// vifsec_sa_info.
	descSAInfo     = prometheus.NewDesc("vifsec_sa_info", "An installed SA's SPI (always 1); sa is the SA's name, or ike/POLICY for an IKE policy's Child SAs.", []string{"tenant", "vm", "sa", "direction", "spi"}, nil)
	descSAPackets  = prometheus.NewDesc("vifsec_sa_packets_total", "Packets processed by an SA (sa: its name, or ike/POLICY summing an IKE policy's Child SAs).", []string{"tenant", "vm", "sa", "direction"}, nil)
	descSABytes    = prometheus.NewDesc("vifsec_sa_bytes_total", "Bytes processed by an SA (sa: its name, or ike/POLICY summing an IKE policy's Child SAs).", []string{"tenant", "vm", "sa", "direction"}, nil)
	descSADrops    = prometheus.NewDesc("vifsec_sa_drops_total", "Packets dropped against an SA, by reason (only reasons seen are exported).", []string{"tenant", "vm", "sa", "direction", "reason"}, nil)
	descSAExpired  = prometheus.NewDesc("vifsec_sa_expired", "1 if the SA (any Child SA of an IKE policy) passed its hard lifetime.", []string{"tenant", "vm", "sa", "direction"}, nil)
	descSARefused  = prometheus.NewDesc("vifsec_sa_seq_refused", "1 if the SA (any Child SA of an IKE policy) refuses to send until re-keyed: its sequence numbers under its key cannot be proven unused.", []string{"tenant", "vm", "sa", "direction"}, nil)
	descVIFUp      = prometheus.NewDesc("vifsec_vif_up", "1 if the VM's interface is attached (its port open), 0 if not (device missing, gone, waiting); absent while no data path reports.", []string{"tenant", "vm", "dev"}, nil)
	descLostEvents = prometheus.NewDesc("vifsec_sa_lost_events_total", "SA lifetime events dropped because nobody read them.", nil, nil)

	descVMIKE          = prometheus.NewDesc("vifsec_vm_ike_datagrams_total", "IKE datagrams on a VM's behalf: in, taken from the wire for vifsecd's IKE instead of the VM; out, sent by it (NAT keepalives included).", []string{"tenant", "vm", "direction"}, nil)
	descVMNeighReq     = prometheus.NewDesc("vifsec_vm_neighbor_requests_total", "ARP requests and IPv6 Neighbor Solicitations sent on a VM's behalf to resolve an IKE peer's next hop.", []string{"tenant", "vm"}, nil)
	descVMNeighLearned = prometheus.NewDesc("vifsec_vm_neighbors_learned_total", "Next hops of a VM's IKE peers learned from answers or from the VM's own frames.", []string{"tenant", "vm"}, nil)
	descUplinkFrames   = prometheus.NewDesc("vifsec_uplink_received_frames_total", "Frames received on the uplink (super-frames the kernel coalesced not counted).", nil, nil)
	descUplinkDrops    = prometheus.NewDesc("vifsec_uplink_drops_total", "Frames from the uplink dropped before reaching any VM, by reason.", []string{"reason"}, nil)
	descUplinkTxErrors = prometheus.NewDesc("vifsec_uplink_tx_errors_total", "Frames the uplink port did not take; restarts at 0 when the uplink port is reopened.", nil, nil)
	descUplinkUp       = prometheus.NewDesc("vifsec_uplink_up", "1 if the configured uplink's port is open, 0 if not (device missing, down or gone); absent without an uplink.", []string{"dev"}, nil)
	descUplinkGSO      = prometheus.NewDesc("vifsec_uplink_udp_gso_trains_total", "UDP GSO super-frames: out, sent to the uplink joined from the ESP-in-UDP or VXLAN datagrams of one guest TSO super-frame; in, received whole from the uplink and cut by vifsecd.", []string{"direction"}, nil)
	descUplinkGSOSegs  = prometheus.NewDesc("vifsec_uplink_udp_gso_segments_total", "Datagrams carried in UDP GSO super-frames, by direction (out, in).", []string{"direction"}, nil)
	descOverlayDrops   = prometheus.NewDesc("vifsec_overlay_drops_total", "Frames the VXLAN overlay dropped, by reason.", []string{"reason"}, nil)

	descIKEHalfOpen       = prometheus.NewDesc("vifsec_ike_half_open_sas", "Half-open IKE SAs: IKE_SA_INIT answered, IKE_AUTH not done.", nil, nil)
	descIKETenantHalfOpen = prometheus.NewDesc("vifsec_ike_tenant_half_open_sas", "Half-open IKE SAs counted against a tenant's limit (one that any of several tenants' policies could answer counts for each).", []string{"tenant"}, nil)
	descIKEReassembly     = prometheus.NewDesc("vifsec_ike_reassembly_bytes", "Memory held by the reassembly of IKE fragments (RFC 7383), all IKE SAs.", nil, nil)
	descIKECookies        = prometheus.NewDesc("vifsec_ike_cookies_sent_total", "IKE_SA_INIT requests answered with a COOKIE (RFC 7296 section 2.6).", nil, nil)
	descIKELimitDrops     = prometheus.NewDesc("vifsec_ike_limit_drops_total", "IKE datagrams or fragments dropped by a limit against exhaustion, by limit.", []string{"limit"}, nil)

	descIKESAs         = prometheus.NewDesc("vifsec_ike_sas", "IKE SAs by tenant, policy and state (CONNECTING, ESTABLISHED, REKEYING, REKEYED, DELETING); only states present are exported.", []string{"tenant", "policy", "state"}, nil)
	descIKEChildSAs    = prometheus.NewDesc("vifsec_ike_child_sas", "Child SAs of IKE policies by tenant, policy and state (INSTALLED, REKEYING, EXPIRED, DISABLED, ...); only states present are exported.", []string{"tenant", "policy", "state"}, nil)
	descIKEPolicyUp    = prometheus.NewDesc("vifsec_ike_policy_established", "1 if the IKE policy has at least one established IKE SA, else 0; one series per configured IKE policy.", []string{"tenant", "policy"}, nil)
	descIKEPolicyInit  = prometheus.NewDesc("vifsec_ike_policy_initiates", "1 if the IKE policy has a remote address (vifsecd initiates and should keep an IKE SA up), 0 if it only responds.", []string{"tenant", "policy"}, nil)
	descIKEFailures    = prometheus.NewDesc("vifsec_ike_negotiation_failures_total", "Failed IKE SA and Child SA negotiations, either side refusing, by reason.", []string{"reason"}, nil)
	descIKERekeys      = prometheus.NewDesc("vifsec_ike_rekeys_total", "Rekeys done (ours or the peer's), by kind (ike, child).", []string{"kind"}, nil)
	descIKERekeyFails  = prometheus.NewDesc("vifsec_ike_rekey_failures_total", "Rekeys vifsecd started that failed (refused, bad or no answer), by kind (ike, child).", []string{"kind"}, nil)
	descIKEDPDFailures = prometheus.NewDesc("vifsec_ike_dpd_failures_total", "Established IKE SAs found dead because the peer did not answer a liveness check (DPD).", nil, nil)
)

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src     Source
	db      *sa.DB
	version string
}

// NewCollector returns a collector for src; db may be nil.
func NewCollector(src Source, db *sa.DB, version string) *Collector {
	return &Collector{src: src, db: db, version: version}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descEnabled, descGen, descObjects, descVMPackets, descVMBytes,
		descVMDrops, descSAPackets, descSABytes, descSADrops, descSAExpired, descSARefused, descLostEvents,
		descVMIKE, descVMNeighReq, descVMNeighLearned, descUplinkFrames, descUplinkDrops, descUplinkTxErrors, descUplinkUp, descUplinkGSO, descUplinkGSOSegs, descOverlayDrops,
		descIKEHalfOpen, descIKETenantHalfOpen, descIKEReassembly, descIKECookies, descIKELimitDrops,
		descSAInfo, descVIFUp, descIKESAs, descIKEChildSAs, descIKEPolicyUp, descIKEPolicyInit,
		descIKEFailures, descIKERekeys, descIKERekeyFails, descIKEDPDFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads every counter now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge(descBuild, 1, c.version, runtime.Version())
	snap := c.src.Snapshot()
	gauge(descEnabled, b2f(snap.Enabled))
	gauge(descGen, float64(snap.Gen))

	tenantOf := map[string]string{}
	nSP := 0
	vifs := c.src.VIFStatus()
	for _, v := range snap.VMs {
		t, n := v.VM.Tenant, v.VM.Name
		tenantOf[n] = t
		nSP += len(v.Policies)
		k := v.Counters
		counter(descVMPackets, k.PacketsIn.Load(), t, n, "in")
		counter(descVMPackets, k.PacketsOut.Load(), t, n, "out")
		counter(descVMBytes, k.BytesIn.Load(), t, n, "in")
		counter(descVMBytes, k.BytesOut.Load(), t, n, "out")
		for r := drop.Reason(1); r < drop.NumCounted; r++ {
			counter(descVMDrops, k.Drops[r].Load(), t, n, r.String())
		}
		counter(descVMIKE, k.IKEIn.Load(), t, n, "in")
		counter(descVMIKE, k.IKEOut.Load(), t, n, "out")
		counter(descVMNeighReq, k.NeighRequests.Load(), t, n)
		counter(descVMNeighLearned, k.NeighLearned.Load(), t, n)
		if vifs != nil {
			gauge(descVIFUp, b2f(vifs[n] == "attached"), t, n, v.VM.Dev)
		}
	}
	if snap.Uplink != nil {
		if st := c.src.UplinkState(); st.Known {
			gauge(descUplinkUp, b2f(st.Up), snap.Uplink.Dev)
		}
	}
	up := c.src.UplinkCounters()
	counter(descUplinkFrames, up.Frames)
	counter(descUplinkTxErrors, up.TxErrors)
	for r, v := range daemon.UplinkDrops(up) {
		counter(descUplinkDrops, v, r)
	}
	for r, v := range daemon.OverlayDrops(up) {
		counter(descOverlayDrops, v, r)
	}
	counter(descUplinkGSO, up.UDPGSO.TrainsSent, "out")
	counter(descUplinkGSO, up.UDPGSO.TrainsReceived, "in")
	counter(descUplinkGSOSegs, up.UDPGSO.SegmentsSent, "out")
	counter(descUplinkGSOSegs, up.UDPGSO.SegmentsReceived, "in")
	ik := c.src.IKEStats()
	gauge(descIKEHalfOpen, float64(ik.HalfOpen))
	gauge(descIKEReassembly, float64(ik.ReassemblyBytes))
	counter(descIKECookies, ik.CookiesSent)
	for l := ike.Limit(1); l < ike.NumLimits; l++ {
		counter(descIKELimitDrops, ik.Drops[l.String()], l.String())
	}
	for _, t := range snap.Tenants {
		gauge(descIKETenantHalfOpen, float64(ik.HalfOpenByTenant[t.Name]), t.Name)
	}
	c.collectIKE(ik, gauge, counter)
	sas := c.src.SAs()
	for _, s := range saSeriesOf(sas, tenantOf) {
		l := s.key
		ch <- prometheus.MustNewConstMetric(descSAPackets, prometheus.CounterValue, float64(s.packets), l.tenant, l.vm, l.sa, l.dir)
		ch <- prometheus.MustNewConstMetric(descSABytes, prometheus.CounterValue, float64(s.bytes), l.tenant, l.vm, l.sa, l.dir)
		for r := drop.Reason(1); r < drop.NumCounted; r++ {
			if v := s.drops[r]; v != 0 {
				counter(descSADrops, v, l.tenant, l.vm, l.sa, l.dir, r.String())
			}
		}
		gauge(descSAExpired, b2f(s.expired), l.tenant, l.vm, l.sa, l.dir)
		gauge(descSARefused, b2f(s.refused), l.tenant, l.vm, l.sa, l.dir)
		for _, spi := range s.spis {
			gauge(descSAInfo, 1, l.tenant, l.vm, l.sa, l.dir, fmt.Sprintf("0x%x", spi))
		}
	}
	gauge(descObjects, float64(len(snap.Tenants)), "tenant")
	gauge(descObjects, float64(len(snap.VMs)), "vm")
	gauge(descObjects, float64(len(sas)), "sa")
	gauge(descObjects, float64(nSP), "sp")
	if c.db != nil {
		counter(descLostEvents, c.db.LostEvents())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// NewRegistry returns a registry with the vifsec collector and the Go
// runtime and process collectors.
func NewRegistry(src Source, db *sa.DB, version string) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(NewCollector(src, db, version),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// saKey is an SA series' identity.
type saKey struct{ tenant, vm, sa, dir string }

// saSeries is one SA series: an SA, or every Child SA of an IKE policy
// in one VM and direction, summed.
type saSeries struct {
	key              saKey
	packets, bytes   uint64
	drops            [drop.NumCounted]uint64
	expired, refused bool
	spis             []uint32
}

// saSeriesOf groups sas by identity, in the order first seen.
func saSeriesOf(sas []daemon.SAInfo, tenantOf map[string]string) []*saSeries {
	var out []*saSeries
	idx := map[saKey]*saSeries{}
	for _, info := range sas {
		k := saKey{tenant: info.Tenant, vm: info.VM, sa: info.Config.Name}
		if k.tenant == "" {
			k.tenant = tenantOf[info.VM]
		}
		if info.IKEPolicy != "" {
			k.sa = "ike/" + info.IKEPolicy
		}
		if info.Dir == sa.DirIn || info.Dir == sa.DirOut {
			k.dir = info.Dir.String()
		}
		s := idx[k]
		if s == nil {
			s = &saSeries{key: k}
			idx[k] = s
			out = append(out, s)
		}
		s.packets += info.Stats.Packets.Load()
		s.bytes += info.Stats.Bytes.Load()
		for r := drop.Reason(1); r < drop.NumCounted; r++ {
			s.drops[r] += info.Stats.Drops[r].Load()
		}
		s.expired = s.expired || info.Expired
		s.refused = s.refused || info.Refused != ""
		if !slices.Contains(s.spis, info.Config.SPI) {
			s.spis = append(s.spis, info.Config.SPI)
		}
	}
	return out
}

// collectIKE exports the IKE engine's SAs, policies and counters.
func (c *Collector) collectIKE(ik daemon.IKEStats, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	for f := ike.Failure(1); f < ike.NumFailures; f++ {
		counter(descIKEFailures, ik.Failures[f.String()], f.String())
	}
	counter(descIKERekeys, ik.IKERekeys, "ike")
	counter(descIKERekeys, ik.ChildRekeys, "child")
	counter(descIKERekeyFails, ik.IKERekeyFailures, "ike")
	counter(descIKERekeyFails, ik.ChildRekeyFailures, "child")
	counter(descIKEDPDFailures, ik.DPDFailures)

	type tps struct{ tenant, policy, state string }
	ikeSAs, _ := c.src.IKESAs("")
	up := map[[2]string]bool{}
	n := map[tps]int{}
	for _, s := range ikeSAs {
		n[tps{s.Tenant, s.Policy, s.State}]++
		if s.State == "ESTABLISHED" || s.State == "REKEYING" {
			up[[2]string{s.Tenant, s.Policy}] = true
		}
	}
	emit := func(d *prometheus.Desc, n map[tps]int) {
		for _, k := range slices.SortedFunc(maps.Keys(n), func(a, b tps) int {
			return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.policy, b.policy), cmp.Compare(a.state, b.state))
		}) {
			gauge(d, float64(n[k]), k.tenant, k.policy, k.state)
		}
	}
	emit(descIKESAs, n)
	children, _ := c.src.IPsecSAs("")
	nc := map[tps]int{}
	for _, r := range children {
		if r.IKEPolicy != "" {
			nc[tps{r.Tenant, r.IKEPolicy, r.State}]++
		}
	}
	emit(descIKEChildSAs, nc)
	for _, pc := range c.src.IKEConfig().Policies {
		p := pc.Policy
		gauge(descIKEPolicyUp, b2f(up[[2]string{p.Tenant, p.Name}]), p.Tenant, p.Name)
		gauge(descIKEPolicyInit, b2f(p.RemoteAddress.IsValid()), p.Tenant, p.Name)
	}
}
